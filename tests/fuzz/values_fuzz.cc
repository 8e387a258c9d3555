// Fuzzes ParseSize, ParseDuration and ParseCount (command-line values) with
// the same text. Beyond not crashing:
//  - an accepted value stays in its documented range, and re-parses to
//    itself from its plain decimal form and, when whole, from its k form;
//  - a plain digit string means exactly its decimal value, and is refused
//    exactly when that value is out of range;
//  - ParseDuration accepts with allow_zero everything it accepts without,
//    as the same value, and refuses without it everything that is zero;
//  - ParseCount's [min, max] bound is tight around the value;
//  - a refusal quotes the input.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_check.h"
#include "tools/cli/values.h"

namespace zrelay {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

// The exact value of a plain digit string (nullopt if `text` is not one),
// saturated at kMax: the checks read kMax as "kMax or more".
std::optional<uint64_t> DecimalValue(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (kMax - digit) / 10) return kMax;
    value = value * 10 + digit;
  }
  return value;
}

template <typename T>
void CheckRefusal(const Result<T>& result, std::string_view what, std::string_view text) {
  if (result.ok()) return;
  const std::string quoted = "bad " + std::string(what) + " '" + std::string(text) + "'";
  FUZZ_CHECK(result.error().message().find(quoted) == 0);
}

void CheckSize(std::string_view text, std::optional<uint64_t> decimal) {
  const Result<uint64_t> size = ParseSize(text);
  CheckRefusal(size, "size", text);
  if (decimal) FUZZ_CHECK(size.ok() == (*decimal < (uint64_t{1} << 63)));
  if (!size.ok()) return;
  const uint64_t v = size.value();
  FUZZ_CHECK(v < (uint64_t{1} << 63));
  if (decimal) FUZZ_CHECK(v == *decimal);
  const Result<uint64_t> again = ParseSize(std::to_string(v));
  FUZZ_CHECK(again.ok() && again.value() == v);
  if (v % 1024 == 0) {
    const Result<uint64_t> in_k = ParseSize(std::to_string(v / 1024) + "k");
    FUZZ_CHECK(in_k.ok() && in_k.value() == v);
  }
}

// "S.NNNNNNNNNs": a duration in seconds with every nanosecond written out.
std::string Seconds(int64_t ns) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%lld.%09llds", static_cast<long long>(ns / 1000000000),
                static_cast<long long>(ns % 1000000000));
  return buf;
}

void CheckDuration(std::string_view text, std::optional<uint64_t> decimal) {
  const Result<Duration> nonzero = ParseDuration(text);
  const Result<Duration> any = ParseDuration(text, /*allow_zero=*/true);
  CheckRefusal(nonzero, "duration", text);
  CheckRefusal(any, "duration", text);
  constexpr uint64_t kMaxSeconds = 1000000000;  // the documented limit: 1e18 ns
  if (decimal) {
    FUZZ_CHECK(any.ok() == (*decimal <= kMaxSeconds));
    FUZZ_CHECK(nonzero.ok() == (*decimal >= 1 && *decimal <= kMaxSeconds));
  }
  if (nonzero.ok()) {
    FUZZ_CHECK(any.ok() && any.value() == nonzero.value());
    FUZZ_CHECK(nonzero.value().count() > 0);
  }
  if (!any.ok()) return;
  const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(any.value()).count();
  FUZZ_CHECK(ns >= 0 && ns <= 1000000000000000000);
  if (ns == 0) FUZZ_CHECK(!nonzero.ok());
  if (decimal) FUZZ_CHECK(static_cast<uint64_t>(ns) == *decimal * 1000000000);
  const Result<Duration> again = ParseDuration(Seconds(ns), /*allow_zero=*/true);
  FUZZ_CHECK(again.ok() && again.value() == any.value());
}

void CheckCount(std::string_view text, std::optional<uint64_t> decimal) {
  const Result<uint64_t> count = ParseCount(text, 0, kMax);
  CheckRefusal(count, "number", text);
  if (decimal && *decimal < kMax) FUZZ_CHECK(count.ok() && count.value() == *decimal);
  if (!count.ok()) return;
  const uint64_t v = count.value();
  const Result<uint64_t> again = ParseCount(std::to_string(v), v, v);
  FUZZ_CHECK(again.ok() && again.value() == v);
  FUZZ_CHECK(ParseCount(text, v, v).ok());
  if (v < kMax) FUZZ_CHECK(!ParseCount(text, v + 1, kMax).ok());
  if (v > 0) FUZZ_CHECK(!ParseCount(text, 0, v - 1).ok());
  if (v % 1000 == 0) {
    const Result<uint64_t> in_k = ParseCount(std::to_string(v / 1000) + "k", 0, kMax);
    FUZZ_CHECK(in_k.ok() && in_k.value() == v);
  }
}

}  // namespace
}  // namespace zrelay

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zrelay;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::optional<uint64_t> decimal = DecimalValue(text);
  CheckSize(text, decimal);
  CheckDuration(text, decimal);
  CheckCount(text, decimal);
  return 0;
}
