// TimerWheel: a hashed timer wheel with O(1) arm, re-arm and cancel.
//
// Idle, connect and handshake timeouts are re-armed on nearly every I/O, so
// they must be cheap: a Timer is an intrusive node embedded in its owner (no
// allocation), a slot is a doubly linked list, and a bitmap of non-empty slots
// lets the loop find the next expiry without walking every slot.
//
// Resolution is one tick (1 ms by default). A timer armed for d fires no
// earlier than d and, on an idle loop, within one tick after it; a busy loop
// fires it at its next turn. Timers that expire in the same tick fire in the
// order they were armed; timers in different ticks fire in tick order.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "engine/clock.h"

namespace zrelay {

class Timer;

class TimerHandler {
 public:
  virtual ~TimerHandler() = default;
  // Runs on the loop thread when `timer` expires. The timer is disarmed
  // before the call, so the handler may re-arm it or destroy its owner
  // through EventLoop::DeferDelete.
  virtual void OnTimer(Timer& timer) = 0;
};

// Embed in the owner. Not copyable or movable: the wheel points at it.
class Timer {
 public:
  explicit Timer(TimerHandler* handler) : handler_(handler) {}
  ~Timer();  // cancels if armed
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  bool armed() const { return wheel_ != nullptr; }
  TimePoint expiry() const { return expiry_; }

 private:
  friend class TimerWheel;
  TimerHandler* handler_;
  class TimerWheel* wheel_ = nullptr;
  Timer* prev_ = nullptr;
  Timer* next_ = nullptr;
  TimePoint expiry_{};
  uint64_t expiry_tick_ = 0;
  size_t slot_ = 0;
};

class TimerWheel {
 public:
  static constexpr size_t kSlots = 4096;  // power of two; 4 s per turn at 1 ms

  explicit TimerWheel(TimePoint now, Duration tick = milliseconds(1));
  ~TimerWheel();  // disarms every timer still armed (does not fire them)
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Arms (or re-arms) `timer` to fire at `now + delay` (negative delay: next
  // Advance). O(1).
  void Arm(Timer& timer, TimePoint now, Duration delay);
  // Disarms `timer` if armed. O(1).
  void Cancel(Timer& timer);

  // Fires every timer whose expiry is <= now, in expiry-tick order. A handler
  // may arm and cancel any timer, including ones due in this same call.
  void Advance(TimePoint now);

  // Time from `now` to the earliest slot holding a timer, or nullopt when no
  // timer is armed. May be earlier than the true expiry (a slot can hold a
  // timer due a later turn of the wheel); never later.
  std::optional<Duration> NextTimeout(TimePoint now) const;

  size_t armed_count() const { return armed_count_; }

 private:
  uint64_t TickOf(TimePoint t) const;

  Duration tick_;
  TimePoint origin_;
  uint64_t current_tick_ = 0;  // every tick < current_tick_ has been processed
  size_t armed_count_ = 0;
  std::array<Timer*, kSlots> heads_{};
  std::array<uint64_t, kSlots / 64> occupied_{};  // bit per non-empty slot
};

}  // namespace zrelay
