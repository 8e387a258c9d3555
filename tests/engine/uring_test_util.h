// What the io_uring tests share: turning a ring until a condition holds, a
// handler that records completions, and a byte pattern for transfers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "engine/uring_ring.h"

namespace zrelay::testing {

// Runs `ring` until `done()` holds or `deadline` passes; `between` (if any)
// runs before every turn, for peers the test thread drives. Returns done().
inline bool DriveUntil(UringRing& ring, const std::function<bool()>& done,
                       Duration deadline = seconds(10),
                       const std::function<void()>& between = {}) {
  const TimePoint end = Clock::now() + deadline;
  while (!done() && Clock::now() < end) {
    if (between) between();
    ring.RunOnce(between ? milliseconds(1) : milliseconds(20));
  }
  return done();
}

struct Completion {
  int res;
  uint32_t flags;
};

// One op whose completions are kept in order.
class RecordingOp : public UringHandler {
 public:
  void OnCompletion(UringOp&, int res, uint32_t flags) override { got.push_back({res, flags}); }
  UringOp op{this};
  std::vector<Completion> got;
};

// `size` bytes that differ from any shifted copy of themselves, so a lost,
// doubled or reordered chunk shows up in a comparison.
inline std::string Pattern(size_t size) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>((i * 131 + (i >> 9)) & 0xff);
  return data;
}

}  // namespace zrelay::testing
