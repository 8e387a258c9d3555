// TimerWheel driven by a fake clock: exact order and timing, no sleeping.
#include "engine/timer_wheel.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace zrelay {
namespace {

// A timer that records when and in what order it fired.
struct Probe : TimerHandler {
  explicit Probe(std::vector<int>* log = nullptr, int id = 0) : timer(this), log(log), id(id) {}
  void OnTimer(Timer& t) override {
    EXPECT_EQ(&t, &timer);
    EXPECT_FALSE(t.armed());  // disarmed before the call
    ++fired;
    if (log != nullptr) log->push_back(id);
    if (on_fire) on_fire();
  }
  Timer timer;
  std::vector<int>* log;
  int id;
  int fired = 0;
  std::function<void()> on_fire;
};

class TimerWheelTest : public ::testing::Test {
 protected:
  TimePoint t0_ = TimePoint() + seconds(1000);  // arbitrary fixed origin
  TimerWheel wheel_{t0_};
  TimePoint At(Duration d) const { return t0_ + d; }
};

TEST_F(TimerWheelTest, FiresNoEarlierThanExpiryAndWithinOneTick) {
  Probe p;
  wheel_.Arm(p.timer, t0_, milliseconds(10));
  EXPECT_TRUE(p.timer.armed());
  EXPECT_EQ(wheel_.armed_count(), 1u);
  wheel_.Advance(At(milliseconds(9)));
  EXPECT_EQ(p.fired, 0);
  wheel_.Advance(At(milliseconds(10) - microseconds(1)));
  EXPECT_EQ(p.fired, 0);
  wheel_.Advance(At(milliseconds(10)));
  EXPECT_EQ(p.fired, 1);
  EXPECT_FALSE(p.timer.armed());
  EXPECT_EQ(wheel_.armed_count(), 0u);
  EXPECT_EQ(wheel_.fired_count(), 1u);
}

TEST_F(TimerWheelTest, SubTickExpiryFiresOnceItHasPassed) {
  // 2.5 ms: rounded up to tick 3 for NextTimeout, but Advance(2.6 ms) already
  // fires it because its expiry has passed.
  Probe p;
  wheel_.Arm(p.timer, t0_, microseconds(2500));
  wheel_.Advance(At(microseconds(2400)));
  EXPECT_EQ(p.fired, 0);
  wheel_.Advance(At(microseconds(2600)));
  EXPECT_EQ(p.fired, 1);
}

TEST_F(TimerWheelTest, DifferentTicksFireInTickOrderSameTickInArmingOrder) {
  std::vector<int> log;
  Probe a(&log, 1), b(&log, 2), c(&log, 3), d(&log, 4), e(&log, 5);
  wheel_.Arm(c.timer, t0_, milliseconds(30));
  wheel_.Arm(a.timer, t0_, milliseconds(10));
  wheel_.Arm(d.timer, t0_, milliseconds(30));  // same tick as c, armed after it
  wheel_.Arm(b.timer, t0_, milliseconds(20));
  wheel_.Arm(e.timer, t0_, milliseconds(30));
  wheel_.Advance(At(milliseconds(100)));  // all due in one call
  EXPECT_EQ(log, (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST_F(TimerWheelTest, ReArmMovesTheTimer) {
  Probe p;
  wheel_.Arm(p.timer, t0_, milliseconds(10));
  wheel_.Arm(p.timer, At(milliseconds(5)), milliseconds(10));  // now due at 15 ms
  EXPECT_EQ(wheel_.armed_count(), 1u);
  EXPECT_EQ(p.timer.expiry(), At(milliseconds(15)));
  wheel_.Advance(At(milliseconds(14)));
  EXPECT_EQ(p.fired, 0);
  wheel_.Advance(At(milliseconds(15)));
  EXPECT_EQ(p.fired, 1);
}

TEST_F(TimerWheelTest, ReArmToSameTickGoesToTheBackOfTheTick) {
  std::vector<int> log;
  Probe a(&log, 1), b(&log, 2);
  wheel_.Arm(a.timer, t0_, milliseconds(10));
  wheel_.Arm(b.timer, t0_, milliseconds(10));
  wheel_.Arm(a.timer, t0_, milliseconds(10));  // re-armed last: fires last
  wheel_.Advance(At(milliseconds(10)));
  EXPECT_EQ(log, (std::vector<int>{2, 1}));
}

TEST_F(TimerWheelTest, CancelStopsItAndIsIdempotent) {
  Probe p, q;
  wheel_.Arm(p.timer, t0_, milliseconds(10));
  wheel_.Arm(q.timer, t0_, milliseconds(10));
  wheel_.Cancel(p.timer);
  wheel_.Cancel(p.timer);
  EXPECT_FALSE(p.timer.armed());
  EXPECT_EQ(wheel_.armed_count(), 1u);
  wheel_.Advance(At(seconds(1)));
  EXPECT_EQ(p.fired, 0);
  EXPECT_EQ(q.fired, 1);
}

TEST_F(TimerWheelTest, DestroyingAnArmedTimerCancelsIt) {
  Probe keep;
  {
    Probe gone;
    wheel_.Arm(gone.timer, t0_, milliseconds(10));
    wheel_.Arm(keep.timer, t0_, milliseconds(10));
    EXPECT_EQ(wheel_.armed_count(), 2u);
  }
  EXPECT_EQ(wheel_.armed_count(), 1u);
  wheel_.Advance(At(milliseconds(20)));
  EXPECT_EQ(keep.fired, 1);
}

TEST_F(TimerWheelTest, HandlerCancelsATimerDueInTheSameTick) {
  std::vector<int> log;
  Probe a(&log, 1), b(&log, 2), c(&log, 3);
  a.on_fire = [&] { wheel_.Cancel(b.timer); };
  wheel_.Arm(a.timer, t0_, milliseconds(10));
  wheel_.Arm(b.timer, t0_, milliseconds(10));
  wheel_.Arm(c.timer, t0_, milliseconds(10));
  wheel_.Advance(At(milliseconds(10)));
  EXPECT_EQ(log, (std::vector<int>{1, 3}));
  EXPECT_EQ(wheel_.armed_count(), 0u);
}

TEST_F(TimerWheelTest, HandlerCancelsATimerDueInALaterTickOfTheSameAdvance) {
  std::vector<int> log;
  Probe a(&log, 1), b(&log, 2);
  a.on_fire = [&] { wheel_.Cancel(b.timer); };
  wheel_.Arm(a.timer, t0_, milliseconds(10));
  wheel_.Arm(b.timer, t0_, milliseconds(20));
  wheel_.Advance(At(milliseconds(50)));
  EXPECT_EQ(log, (std::vector<int>{1}));
}

TEST_F(TimerWheelTest, HandlerReArmsItselfAndOthers) {
  std::vector<int> log;
  Probe a(&log, 1), b(&log, 2);
  TimePoint now = At(milliseconds(10));
  // a re-arms itself 5 ms later and pushes b back, within one Advance call.
  a.on_fire = [&] {
    if (a.fired == 1) {
      wheel_.Arm(a.timer, now, milliseconds(5));
      wheel_.Arm(b.timer, now, milliseconds(1));
    }
  };
  wheel_.Arm(a.timer, t0_, milliseconds(10));
  wheel_.Arm(b.timer, t0_, milliseconds(10));
  wheel_.Advance(now);
  EXPECT_EQ(log, (std::vector<int>{1}));  // b was moved away before its turn
  wheel_.Advance(At(milliseconds(11)));
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
  wheel_.Advance(At(milliseconds(15)));
  EXPECT_EQ(log, (std::vector<int>{1, 2, 1}));
}

TEST_F(TimerWheelTest, ZeroAndNegativeDelayFireOnTheNextAdvance) {
  Probe p, q;
  wheel_.Advance(At(milliseconds(7)));
  wheel_.Arm(p.timer, At(milliseconds(7)), Duration::zero());
  wheel_.Arm(q.timer, At(milliseconds(7)), -milliseconds(3));
  wheel_.Advance(At(milliseconds(7)));  // same instant: both already due
  EXPECT_EQ(p.fired, 1);
  EXPECT_EQ(q.fired, 1);
}

TEST_F(TimerWheelTest, HandlerArmingZeroDelayDoesNotLoopForever) {
  Probe p;
  p.on_fire = [&] {
    if (p.fired < 1000) wheel_.Arm(p.timer, At(milliseconds(1)), Duration::zero());
  };
  wheel_.Arm(p.timer, t0_, milliseconds(1));
  wheel_.Advance(At(milliseconds(1)));
  // Re-armed for "now" from its own handler: it may fire again in this call
  // (it is due), but each Advance visits a timer a bounded number of times.
  EXPECT_GE(p.fired, 1);
  EXPECT_LE(p.fired, 2);
  EXPECT_TRUE(p.timer.armed());
  const int before = p.fired;
  wheel_.Advance(At(milliseconds(1)));
  EXPECT_GE(p.fired, before + 1);
  EXPECT_LE(p.fired, before + 2);
}

TEST_F(TimerWheelTest, BeyondOneTurnOfTheWheel) {
  // 5 s with 4096 slots of 1 ms: the timer shares a slot with tick 904 of
  // the first turn and must be skipped until its own turn comes.
  Probe far, near;
  wheel_.Arm(far.timer, t0_, seconds(5));
  wheel_.Arm(near.timer, t0_, milliseconds(5000 - 4096));
  for (int ms = 1; ms < 5000; ++ms) {
    wheel_.Advance(At(milliseconds(ms)));
    if (ms == 904) {
      EXPECT_EQ(near.fired, 1);
    }
    ASSERT_EQ(far.fired, 0) << "fired early at " << ms << " ms";
  }
  wheel_.Advance(At(seconds(5)));
  EXPECT_EQ(far.fired, 1);
}

TEST_F(TimerWheelTest, LongStallFiresEverythingInOrder) {
  // One Advance spanning several turns (a loop stalled for 20 s).
  std::vector<int> log;
  std::vector<std::unique_ptr<Probe>> probes;
  const int delays_ms[] = {15000, 3, 9000, 4099, 3, 4096, 1};
  for (int i = 0; i < 7; ++i) {
    probes.push_back(std::make_unique<Probe>(&log, delays_ms[i]));
    wheel_.Arm(probes.back()->timer, t0_, milliseconds(delays_ms[i]));
  }
  Probe later;
  wheel_.Arm(later.timer, t0_, seconds(30));
  wheel_.Advance(At(seconds(20)));
  EXPECT_EQ(log, (std::vector<int>{1, 3, 3, 4096, 4099, 9000, 15000}));
  EXPECT_EQ(later.fired, 0);
  EXPECT_EQ(wheel_.armed_count(), 1u);
  wheel_.Advance(At(seconds(30)));
  EXPECT_EQ(later.fired, 1);
}

TEST_F(TimerWheelTest, TenThousandTimersAllFireInOrder) {
  constexpr int kCount = 10000;
  std::vector<int> log;
  std::vector<std::unique_ptr<Probe>> probes;
  for (int i = 0; i < kCount; ++i) {
    probes.push_back(std::make_unique<Probe>(&log, i));
    // Spread over ~10 s (several turns), in increasing expiry.
    wheel_.Arm(probes.back()->timer, t0_, microseconds(1000 * i + 500));
  }
  EXPECT_EQ(wheel_.armed_count(), static_cast<size_t>(kCount));
  for (int ms = 0; ms <= kCount + 1; ms += 7) wheel_.Advance(At(milliseconds(ms)));
  wheel_.Advance(At(milliseconds(kCount + 1)));
  ASSERT_EQ(log.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(log[i], i);
  EXPECT_EQ(wheel_.armed_count(), 0u);
}

TEST_F(TimerWheelTest, NextTimeout) {
  EXPECT_FALSE(wheel_.NextTimeout(t0_).has_value());
  Probe a, b;
  wheel_.Arm(a.timer, t0_, milliseconds(30));
  wheel_.Arm(b.timer, t0_, microseconds(7300));
  // Earliest slot: the tick ending at 8 ms holds b (7.3 ms): never before b
  // is due, at most one tick after.
  std::optional<Duration> next = wheel_.NextTimeout(t0_);
  ASSERT_TRUE(next.has_value());
  EXPECT_GE(*next, microseconds(7300));
  EXPECT_LE(*next, milliseconds(8));
  EXPECT_EQ(*wheel_.NextTimeout(At(milliseconds(3))), milliseconds(5));
  wheel_.Advance(At(milliseconds(8)));
  EXPECT_EQ(*wheel_.NextTimeout(At(milliseconds(8))), milliseconds(22));
  EXPECT_EQ(*wheel_.NextTimeout(At(seconds(1))), Duration::zero());  // overdue
  wheel_.Cancel(a.timer);
  EXPECT_FALSE(wheel_.NextTimeout(At(milliseconds(8))).has_value());
}

TEST_F(TimerWheelTest, NextTimeoutForAFarTimerIsEarlyNeverLate) {
  Probe far;
  wheel_.Arm(far.timer, t0_, seconds(10));
  std::optional<Duration> next = wheel_.NextTimeout(t0_);
  ASSERT_TRUE(next.has_value());
  EXPECT_LE(*next, seconds(10));
  EXPECT_GT(*next, Duration::zero());
  // Following NextTimeout wake-ups like a loop would reaches it in a few
  // steps (one per turn of the wheel), and never fires it early.
  TimePoint now = t0_;
  int wakeups = 0;
  while (far.fired == 0) {
    ASSERT_LT(++wakeups, 10);
    now += *wheel_.NextTimeout(now);
    wheel_.Advance(now);
    if (far.fired == 0) {
      ASSERT_LT(now, At(seconds(10)));
    }
  }
  EXPECT_EQ(now, At(seconds(10)));
}

TEST_F(TimerWheelTest, CoarseTick) {
  TimerWheel wheel(t0_, milliseconds(10));
  Probe p;
  wheel.Arm(p.timer, t0_, milliseconds(25));
  wheel.Advance(At(milliseconds(24)));
  EXPECT_EQ(p.fired, 0);
  wheel.Advance(At(milliseconds(25)));
  EXPECT_EQ(p.fired, 1);
}

TEST_F(TimerWheelTest, WheelDestructionDisarmsTimers) {
  Probe p;
  {
    TimerWheel wheel(t0_);
    wheel.Arm(p.timer, t0_, milliseconds(5));
    EXPECT_TRUE(p.timer.armed());
  }
  EXPECT_FALSE(p.timer.armed());
  EXPECT_EQ(p.fired, 0);
}

}  // namespace
}  // namespace zrelay
