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

  // Time from `now` to the end of the earliest tick whose slot holds a timer
  // (when Advance will fire it), or nullopt when no timer is armed. May be
  // earlier than the true expiry (a slot can hold a timer due a later turn of
  // the wheel); at most one tick later than it (expiries round up to ticks).
  std::optional<Duration> NextTimeout(TimePoint now) const;

  size_t armed_count() const { return armed_count_; }
  // Timers fired since construction.
  uint64_t fired_count() const { return fired_count_; }

 private:
  // slot_ of a timer on the due list (collected by Advance, about to fire).
  static constexpr size_t kDueSlot = kSlots;

  uint64_t TickOf(TimePoint t) const;      // floor: the tick `t` falls in
  uint64_t CeilTickOf(TimePoint t) const;  // the first tick ending at or after `t`
  // Lists are doubly linked; the head's prev_ is the tail, the tail's next_ null.
  Timer*& HeadOf(size_t slot) { return slot == kDueSlot ? due_head_ : heads_[slot]; }
  void Link(Timer& timer, size_t slot);  // appends: same-tick timers keep arming order
  void Unlink(Timer& timer);
  template <typename Pred>
  void CollectDue(size_t slot, Pred due);
  void FireDue();
  // The first tick in [from, from + span) whose slot is non-empty (span capped
  // at one turn of the wheel).
  std::optional<uint64_t> FirstOccupied(uint64_t from, uint64_t span) const;

  Duration tick_;
  TimePoint origin_;
  uint64_t current_tick_ = 0;  // every tick < current_tick_ has been processed
  size_t armed_count_ = 0;
  uint64_t fired_count_ = 0;
  std::array<Timer*, kSlots> heads_{};
  std::array<uint64_t, kSlots / 64> occupied_{};  // bit per non-empty slot
  Timer* due_head_ = nullptr;  // timers Advance has found due, fired in order
  bool advancing_ = false;
};

}  // namespace zrelay
