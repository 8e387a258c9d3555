// TimerWheel costs with a realistic population: 100k timers armed with
// idle-timeout-like delays (1 ms .. 60 s, several turns of the wheel).
//
//   bazel run -c opt //bench/engine:timer_wheel_bench
#include "engine/timer_wheel.h"

#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

namespace zrelay {
namespace {

struct NullHandler : TimerHandler {
  void OnTimer(Timer&) override { ++fired; }
  uint64_t fired = 0;
};

// A wheel with `count` timers armed with random delays, plus the delays.
struct Population {
  explicit Population(size_t count) : wheel(now), delays(count) {
    timers.reserve(count);
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<int64_t> ms(1, 60000);
    for (size_t i = 0; i < count; ++i) {
      timers.push_back(std::make_unique<Timer>(&handler));
      delays[i] = milliseconds(ms(rng));
    }
  }
  void ArmAll() {
    for (size_t i = 0; i < timers.size(); ++i) wheel.Arm(*timers[i], now, delays[i]);
  }
  void CancelAll() {
    for (auto& t : timers) wheel.Cancel(*t);
  }

  TimePoint now = TimePoint() + seconds(1);
  NullHandler handler;
  TimerWheel wheel;
  std::vector<std::unique_ptr<Timer>> timers;
  std::vector<Duration> delays;
};

// Arm an unarmed timer while 100k others are armed.
void BM_TimerArm(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  Population background(n);
  background.ArmAll();
  Population fresh(n);  // its timers go on `background`'s wheel
  size_t i = 0;
  for (auto _ : state) {
    background.wheel.Arm(*fresh.timers[i], background.now, fresh.delays[i]);
    if (++i == n) {
      state.PauseTiming();
      for (auto& t : fresh.timers) background.wheel.Cancel(*t);
      i = 0;
      state.ResumeTiming();
    }
  }
  for (auto& t : fresh.timers) background.wheel.Cancel(*t);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TimerArm)->Arg(100000);

// Re-arm (reset) an armed timer: the idle timeout pushed back on every I/O.
void BM_TimerReArm(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  Population pop(n);
  pop.ArmAll();
  size_t i = 0;
  for (auto _ : state) {
    pop.wheel.Arm(*pop.timers[i], pop.now, pop.delays[(i * 7919) % n]);
    if (++i == n) i = 0;
  }
  benchmark::DoNotOptimize(pop.wheel.armed_count());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TimerReArm)->Arg(1000)->Arg(100000);

// Cancel an armed timer while 100k others are armed.
void BM_TimerCancel(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  Population pop(n);
  pop.ArmAll();
  size_t i = 0;
  for (auto _ : state) {
    pop.wheel.Cancel(*pop.timers[i]);
    if (++i == n) {
      state.PauseTiming();
      pop.ArmAll();
      i = 0;
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TimerCancel)->Arg(100000);

// Advance through 60 s in 1 ms steps with 100k timers: cost per fired timer
// (including the empty ticks skipped through the bitmap).
void BM_TimerAdvanceFire(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  uint64_t fired = 0;
  for (auto _ : state) {
    state.PauseTiming();
    Population pop(n);
    pop.ArmAll();
    state.ResumeTiming();
    for (TimePoint t = pop.now; pop.wheel.armed_count() > 0; t += milliseconds(1)) {
      pop.wheel.Advance(t);
    }
    fired += pop.handler.fired;
  }
  state.SetItemsProcessed(static_cast<int64_t>(fired));
}
BENCHMARK(BM_TimerAdvanceFire)->Arg(100000)->Unit(benchmark::kMillisecond);

// NextTimeout with 100k timers (called once per loop turn).
void BM_TimerNextTimeout(benchmark::State& state) {
  Population pop(static_cast<size_t>(state.range(0)));
  pop.ArmAll();
  for (auto _ : state) benchmark::DoNotOptimize(pop.wheel.NextTimeout(pop.now));
}
BENCHMARK(BM_TimerNextTimeout)->Arg(100000);

}  // namespace
}  // namespace zrelay
