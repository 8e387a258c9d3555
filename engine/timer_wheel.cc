#include "engine/timer_wheel.h"

#include <algorithm>
#include <vector>

#include "engine/check.h"

namespace zrelay {

Timer::~Timer() {
  if (wheel_ != nullptr) wheel_->Cancel(*this);
}

TimerWheel::TimerWheel(TimePoint now, Duration tick) : tick_(tick), origin_(now) {
  ZR_CHECK(tick_ > Duration::zero(), "a timer wheel needs a positive tick");
}

TimerWheel::~TimerWheel() {
  auto disarm = [](Timer* t) {
    while (t != nullptr) {
      Timer* next = t->next_;
      t->wheel_ = nullptr;
      t->prev_ = t->next_ = nullptr;
      t = next;
    }
  };
  for (Timer* head : heads_) disarm(head);
  disarm(due_head_);
}

uint64_t TimerWheel::TickOf(TimePoint t) const {
  if (t <= origin_) return 0;
  return static_cast<uint64_t>((t - origin_) / tick_);
}

uint64_t TimerWheel::CeilTickOf(TimePoint t) const {
  if (t <= origin_) return 0;
  const auto d = (t - origin_).count();
  const auto k = tick_.count();
  return static_cast<uint64_t>(d / k + (d % k != 0 ? 1 : 0));
}

void TimerWheel::Link(Timer& timer, size_t slot) {
  Timer*& head = HeadOf(slot);
  timer.slot_ = slot;
  timer.next_ = nullptr;
  if (head == nullptr) {
    head = &timer;
    timer.prev_ = &timer;
    if (slot != kDueSlot) occupied_[slot / 64] |= uint64_t{1} << (slot % 64);
  } else {
    Timer* tail = head->prev_;
    tail->next_ = &timer;
    timer.prev_ = tail;
    head->prev_ = &timer;
  }
}

void TimerWheel::Unlink(Timer& timer) {
  Timer*& head = HeadOf(timer.slot_);
  if (&timer == head) {
    head = timer.next_;
    if (head != nullptr) head->prev_ = timer.prev_;  // still the tail
  } else {
    timer.prev_->next_ = timer.next_;
    if (timer.next_ != nullptr) {
      timer.next_->prev_ = timer.prev_;
    } else {
      head->prev_ = timer.prev_;  // `timer` was the tail
    }
  }
  if (head == nullptr && timer.slot_ != kDueSlot) {
    occupied_[timer.slot_ / 64] &= ~(uint64_t{1} << (timer.slot_ % 64));
  }
  timer.prev_ = timer.next_ = nullptr;
}

void TimerWheel::Arm(Timer& timer, TimePoint now, Duration delay) {
  if (timer.wheel_ == this) {
    Unlink(timer);
  } else {
    if (timer.wheel_ != nullptr) timer.wheel_->Cancel(timer);
    timer.wheel_ = this;
    ++armed_count_;
  }
  // Saturate instead of overflowing on "never" delays.
  timer.expiry_ = delay > TimePoint::max() - now ? TimePoint::max() : now + delay;
  // Round up so a timer never fires before its expiry; a tick already
  // processed (negative or tiny delay) means "the next Advance".
  timer.expiry_tick_ = std::max(CeilTickOf(timer.expiry_), current_tick_);
  Link(timer, timer.expiry_tick_ & (kSlots - 1));
}

void TimerWheel::Cancel(Timer& timer) {
  if (timer.wheel_ != this) {
    ZR_CHECK(timer.wheel_ == nullptr, "timer armed on another wheel");
    return;
  }
  Unlink(timer);
  timer.wheel_ = nullptr;
  --armed_count_;
}

template <typename Pred>
void TimerWheel::CollectDue(size_t slot, Pred due) {
  Timer* t = heads_[slot];
  while (t != nullptr) {
    Timer* next = t->next_;
    if (due(*t)) {
      Unlink(*t);
      Link(*t, kDueSlot);
    }
    t = next;
  }
}

void TimerWheel::FireDue() {
  // One at a time from the head: a handler may cancel or re-arm any timer,
  // including ones still waiting on the due list.
  while (due_head_ != nullptr) {
    Timer* t = due_head_;
    Unlink(*t);
    t->wheel_ = nullptr;
    --armed_count_;
    ++fired_count_;
    t->handler_->OnTimer(*t);
  }
}

std::optional<uint64_t> TimerWheel::FirstOccupied(uint64_t from, uint64_t span) const {
  const uint64_t limit = std::min<uint64_t>(span, kSlots);
  uint64_t i = 0;
  while (i < limit) {
    const size_t slot = (from + i) & (kSlots - 1);
    const size_t bit = slot % 64;
    const uint64_t bits = occupied_[slot / 64] >> bit;
    if (bits != 0) {
      const uint64_t at = i + static_cast<uint64_t>(__builtin_ctzll(bits));
      if (at < limit) return from + at;
      return std::nullopt;
    }
    i += 64 - bit;
  }
  return std::nullopt;
}

void TimerWheel::Advance(TimePoint now) {
  ZR_CHECK(!advancing_, "TimerWheel::Advance is not re-entrant (called from a timer handler)");
  advancing_ = true;
  const uint64_t target = TickOf(now);

  if (target >= current_tick_ && target - current_tick_ >= kSlots) {
    // More than a whole turn passed (a stalled loop): every slot may hold
    // due timers of several ticks. Gather them and keep tick order with a
    // stable sort (same-tick timers share a slot, already in arming order).
    std::vector<Timer*> due;
    for (size_t slot = 0; slot < kSlots; ++slot) {
      for (Timer* t = heads_[slot]; t != nullptr; t = t->next_) {
        if (t->expiry_tick_ <= target) due.push_back(t);
      }
    }
    std::stable_sort(due.begin(), due.end(),
                     [](const Timer* a, const Timer* b) { return a->expiry_tick_ < b->expiry_tick_; });
    for (Timer* t : due) {
      Unlink(*t);
      Link(*t, kDueSlot);
    }
    current_tick_ = target + 1;
    FireDue();
  }

  // Tick by tick, skipping empty slots through the bitmap. Handlers may arm
  // timers into ticks not yet reached; the scan picks them up in order.
  while (current_tick_ <= target) {
    std::optional<uint64_t> tick = FirstOccupied(current_tick_, target - current_tick_ + 1);
    if (!tick) {
      current_tick_ = target + 1;
      break;
    }
    current_tick_ = *tick + 1;
    const uint64_t t = *tick;
    CollectDue(t & (kSlots - 1), [t](const Timer& timer) { return timer.expiry_tick_ <= t; });
    FireDue();
  }

  // The tick `now` is inside is not over yet, but timers of it whose expiry
  // has passed are due, and so are timers armed with a delay that had
  // already passed (their tick was moved up to this one).
  CollectDue(current_tick_ & (kSlots - 1),
             [now](const Timer& timer) { return timer.expiry_ <= now; });
  FireDue();
  advancing_ = false;
}

std::optional<Duration> TimerWheel::NextTimeout(TimePoint now) const {
  if (armed_count_ == 0) return std::nullopt;
  if (due_head_ != nullptr) return Duration::zero();
  std::optional<uint64_t> tick = FirstOccupied(current_tick_, kSlots);
  if (!tick) return Duration::zero();  // unreachable: armed timers sit in slots
  const TimePoint at = origin_ + tick_ * static_cast<int64_t>(*tick);
  return at <= now ? Duration::zero() : at - now;
}

}  // namespace zrelay
