#include "relay/pair_options.h"

#include <utility>

namespace zrelay {
namespace {

std::string RateLimitError(const RateLimit& limit, const char* way) {
  if (limit.bytes_per_second == 0 && limit.burst > 0) {
    return std::string("pair.") + way + ".burst is " + std::to_string(limit.burst) +
           " but bytes_per_second is 0 (unlimited): set a rate, or leave burst 0";
  }
  return {};
}

void ApplyToDirection(const PairOptions& options, const RateLimit& limit, Flow flow,
                      TimePoint now, Direction& dir) {
  dir.high_watermark = options.high_watermark;
  dir.low_watermark = options.low_watermark;
  if (limit.bytes_per_second > 0) dir.rate.emplace(limit, now);
  if (options.filter) dir.filter = options.filter(flow);
  if (dir.filter) {
    // A filter sees every byte, so they must pass through user space.
    dir.path = Path::kCopy;
    dir.auto_splice = false;
  }
}

}  // namespace

std::string PairOptionsError(const PairOptions& options, const EngineOptions& engine) {
  if (options.high_watermark > engine.buffer_size) {
    return "pair.high_watermark (" + std::to_string(options.high_watermark) +
           " bytes) is above the engine's buffer_size (" + std::to_string(engine.buffer_size) +
           " bytes)";
  }
  const size_t high = options.high_watermark > 0 ? options.high_watermark : engine.buffer_size;
  if (options.low_watermark > high) {
    return "pair.low_watermark (" + std::to_string(options.low_watermark) +
           " bytes) is above the high watermark (" + std::to_string(high) + " bytes)";
  }
  if (std::string error = RateLimitError(options.a_to_b, "a_to_b"); !error.empty()) return error;
  return RateLimitError(options.b_to_a, "b_to_a");
}

void ApplyPairOptions(const PairOptions& options, TimePoint now, Direction& a_to_b,
                      Direction& b_to_a) {
  ApplyToDirection(options, options.a_to_b, Flow::kAToB, now, a_to_b);
  ApplyToDirection(options, options.b_to_a, Flow::kBToA, now, b_to_a);
}

void StagePreread(Direction& dir, std::string preread) {
  if (preread.empty()) return;
  dir.staged = std::move(preread);
  dir.staged_offset = 0;
  if (dir.path == Path::kSplice) {
    dir.path = Path::kCopy;
    dir.splice_after_staged = true;
  }
}

}  // namespace zrelay
