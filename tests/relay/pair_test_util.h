// Peers for the pair-options tests: pattern bytes from any offset (a
// preread is the pattern's first bytes and the peer sends the rest), whole
// streams read into a string, and socket timeouts so that a relay that
// stalls fails a test instead of hanging it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/clock.h"

namespace zrelay::testing {

// Pattern `seed`'s bytes [offset, offset + len) (relay_test_util.h).
std::string Pattern(uint64_t seed, uint64_t offset, size_t len);

// Sends all of `data` on a blocking fd; false on an error.
bool SendAll(int fd, std::string_view data);
// Sends pattern `seed`'s bytes [offset, offset + size) in 64 KiB writes.
bool SendPatternFrom(int fd, uint64_t seed, uint64_t offset, uint64_t size);

struct Stream {
  std::string data;
  int error = 0;  // errno of a failed read (EAGAIN: the timeout), 0 at EOF
};
// Reads a blocking fd until EOF, an error, or more than `limit` bytes.
Stream ReadToEof(int fd, size_t limit = 64 << 20);

// SO_RCVTIMEO and SO_SNDTIMEO: a blocked read or write fails with EAGAIN
// after `timeout`.
void SetIoTimeout(int fd, Duration timeout);

}  // namespace zrelay::testing
