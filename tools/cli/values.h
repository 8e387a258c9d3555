// Parsers for command-line values: sizes, durations, counts, booleans and
// the host part of an address.
//
// Each returns the value or an Error whose message quotes the input and says
// what is wrong ("bad size '12q': unknown suffix 'q' (use k, M, G or T)").
// The caller prefixes the flag name.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/clock.h"
#include "engine/result.h"

namespace zrelay {

// "4096", "64k", "64K", "64KiB", "1M", "1MB", "1.5G", "2T": binary multiples
// (k = 1024). Fractions are allowed with a suffix and must come out whole
// bytes. No sign, no spaces, no overflow past 2^63.
Result<uint64_t> ParseSize(std::string_view text);

// "10" (seconds), "2.5s", "500ms", "250us", "2m", "1h". Must be > 0 unless
// `allow_zero`.
Result<Duration> ParseDuration(std::string_view text, bool allow_zero = false);

// A whole decimal number in [min, max] ("1000"; "10k" = 10000 with a decimal
// k/M suffix for convenience).
Result<uint64_t> ParseCount(std::string_view text, uint64_t min, uint64_t max);

// A boolean flag's value: true, yes, on, 1 or false, no, off, 0 (any case).
// Anything else is an error, never a silent true: "--backend-insecure=false"
// must not turn verification off.
Result<bool> ParseBool(std::string_view text);

// The host part of an address as typed: "localhost:80" -> "localhost",
// "[::1]:80" -> "::1"; "" for ":80", "*:80" and "unix:/path".
std::string HostOf(std::string_view address);

// True for an IPv4 or IPv6 literal ("127.0.0.1", "::1"), false for a name.
bool IsIpLiteral(std::string_view host);

// "1.50 GiB", "64.0 KiB", "512 B".
std::string FormatBytes(double bytes);

}  // namespace zrelay
