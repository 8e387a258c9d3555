#include "tools/cli/values.h"

#include <arpa/inet.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <string>

namespace zrelay {
namespace {

std::string Quote(std::string_view text) { return "'" + std::string(text) + "'"; }

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Splits "12.5kib" into a number part "12.5" and a suffix "kib". The number
// part is digits with at most one '.', at least one digit, no sign.
struct Split {
  std::string number;
  std::string suffix;
};

Result<Split> SplitNumber(std::string_view text, const char* what) {
  if (text.empty()) return Error::Invalid(std::string("bad ") + what + " '': empty");
  size_t i = 0;
  bool dot = false;
  bool digit = false;
  while (i < text.size()) {
    char c = text[i];
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
    ++i;
  }
  if (!digit) {
    return Error::Invalid(std::string("bad ") + what + " " + Quote(text) + ": expected a number" +
                          (text[0] == '-' ? " (negative values are not allowed)" : ""));
  }
  return Split{std::string(text.substr(0, i)), Lower(text.substr(i))};
}

// The number part as a long double (at most 18 significant digits matter).
long double ToNumber(const std::string& number) { return std::strtold(number.c_str(), nullptr); }

}  // namespace

Result<uint64_t> ParseSize(std::string_view text) {
  auto split = SplitNumber(text, "size");
  if (!split.ok()) return split.error();
  const std::string& s = split->suffix;
  int shift = -1;
  if (s.empty() || s == "b")
    shift = 0;
  else if (s == "k" || s == "kb" || s == "kib")
    shift = 10;
  else if (s == "m" || s == "mb" || s == "mib")
    shift = 20;
  else if (s == "g" || s == "gb" || s == "gib")
    shift = 30;
  else if (s == "t" || s == "tb" || s == "tib")
    shift = 40;
  if (shift < 0) {
    return Error::Invalid("bad size " + Quote(text) + ": unknown suffix '" + s +
                          "' (use k, M, G or T; binary, k = 1024)");
  }
  long double value = ToNumber(split->number) * std::ldexp(1.0L, shift);
  if (value >= std::ldexp(1.0L, 63)) {
    return Error::Invalid("bad size " + Quote(text) + ": too large");
  }
  if (value != std::floor(value)) {
    return Error::Invalid("bad size " + Quote(text) + ": not a whole number of bytes");
  }
  return static_cast<uint64_t>(value);
}

Result<Duration> ParseDuration(std::string_view text, bool allow_zero) {
  auto split = SplitNumber(text, "duration");
  if (!split.ok()) return split.error();
  const std::string& s = split->suffix;
  long double ns_per_unit = 0;
  if (s.empty() || s == "s")
    ns_per_unit = 1e9L;
  else if (s == "ms")
    ns_per_unit = 1e6L;
  else if (s == "us")
    ns_per_unit = 1e3L;
  else if (s == "m" || s == "min")
    ns_per_unit = 60e9L;
  else if (s == "h")
    ns_per_unit = 3600e9L;
  if (ns_per_unit == 0) {
    return Error::Invalid("bad duration " + Quote(text) + ": unknown unit '" + s +
                          "' (use s, ms, us, m or h; a bare number is seconds)");
  }
  long double ns = ToNumber(split->number) * ns_per_unit;
  if (ns > 1e18L) return Error::Invalid("bad duration " + Quote(text) + ": too long");
  if (!allow_zero && ns < 1) {
    return Error::Invalid("bad duration " + Quote(text) + ": must be greater than 0");
  }
  return std::chrono::duration_cast<Duration>(
      std::chrono::nanoseconds(static_cast<int64_t>(std::llround(ns))));
}

Result<uint64_t> ParseCount(std::string_view text, uint64_t min, uint64_t max) {
  auto split = SplitNumber(text, "number");
  if (!split.ok()) return split.error();
  if (split->number.find('.') != std::string::npos && split->suffix.empty()) {
    return Error::Invalid("bad number " + Quote(text) + ": expected a whole number");
  }
  long double scale = 0;
  const std::string& s = split->suffix;
  if (s.empty())
    scale = 1;
  else if (s == "k")
    scale = 1e3L;
  else if (s == "m")
    scale = 1e6L;
  if (scale == 0) {
    return Error::Invalid("bad number " + Quote(text) + ": unknown suffix '" + s +
                          "' (use k = 1000 or M = 1000000)");
  }
  long double value = ToNumber(split->number) * scale;
  if (value != std::floor(value)) {
    return Error::Invalid("bad number " + Quote(text) + ": expected a whole number");
  }
  if (value < static_cast<long double>(min) || value > static_cast<long double>(max)) {
    return Error::Invalid("bad number " + Quote(text) + ": must be between " + std::to_string(min) +
                          " and " + std::to_string(max));
  }
  return static_cast<uint64_t>(value);
}

Result<bool> ParseBool(std::string_view text) {
  std::string lower = Lower(text);
  if (lower == "true" || lower == "yes" || lower == "on" || lower == "1") return true;
  if (lower == "false" || lower == "no" || lower == "off" || lower == "0") return false;
  return Error::Invalid(Quote(text) +
                        " is not a boolean (use true, false, yes, no, on, off, 1 or 0)");
}

std::string HostOf(std::string_view address) {
  if (address.substr(0, 5) == "unix:") return "";
  size_t colon = address.rfind(':');
  std::string_view host = address.substr(0, colon == std::string_view::npos ? 0 : colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "*") return "";
  return std::string(host);
}

bool IsIpLiteral(std::string_view host) {
  std::string text(host);
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, text.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

std::string FormatBytes(double bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024.0 && unit < 4) {
    bytes /= 1024.0;
    ++unit;
  }
  char buf[64];
  if (unit == 0) {
    std::snprintf(buf, sizeof(buf), "%.0f B", bytes);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2f %s", bytes, kUnits[unit]);
  }
  return buf;
}

}  // namespace zrelay
