// Cross-thread costs of the EventLoop: Post throughput into a running loop,
// and the post-to-run wake-up latency (a ping-pong between a thread and a
// loop blocked in epoll_wait).
//
//   bazel run -c opt //bench/engine:event_loop_bench
#include "engine/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <atomic>
#include <memory>
#include <thread>

namespace zrelay {
namespace {

// A loop running Run() on its own thread for the benchmark's lifetime.
class RunningLoop {
 public:
  RunningLoop() : loop_(EventLoop::Create().value()), thread_([this] { loop_->Run(); }) {}
  ~RunningLoop() { Join(); }
  EventLoop& loop() { return *loop_; }
  // The loop's counters belong to its thread: read them only once it ended.
  const EventLoopStats& StopAndStats() {
    Join();
    return loop_->stats();
  }

 private:
  void Join() {
    if (!thread_.joinable()) return;
    loop_->Stop();
    thread_.join();
  }
  std::unique_ptr<EventLoop> loop_;
  std::thread thread_;
};

// One producer posting batches of 1000 tasks and waiting for each batch to
// have run: end-to-end tasks/s through the queue and the eventfd.
void BM_PostThroughput(benchmark::State& state) {
  constexpr int64_t kBatch = 1000;
  RunningLoop running;
  std::atomic<int64_t> ran{0};
  int64_t posted = 0;
  for (auto _ : state) {
    for (int64_t i = 0; i < kBatch; ++i) {
      running.loop().Post([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
    }
    posted += kBatch;
    while (ran.load(std::memory_order_acquire) < posted) std::this_thread::yield();
  }
  state.SetItemsProcessed(posted);
  state.counters["turns_per_1k_tasks"] =
      1000.0 * static_cast<double>(running.StopAndStats().turns) / static_cast<double>(posted);
}
BENCHMARK(BM_PostThroughput)->UseRealTime();

// Two producers into one loop: the cost of Post() under contention on the
// task mutex (the loop drains concurrently; draining is not timed).
void BM_PostTwoProducers(benchmark::State& state) {
  static RunningLoop* running = nullptr;
  static std::atomic<int64_t> ran{0};
  static std::atomic<int64_t> posted{0};
  static std::atomic<int> finished{0};
  if (state.thread_index() == 0) {
    // Runs before the start barrier of the timed loop: no thread posts yet.
    running = new RunningLoop();
    ran = 0;
    posted = 0;
    finished = 0;
  }
  int64_t mine = 0;
  for (auto _ : state) {
    running->loop().Post([] { ran.fetch_add(1, std::memory_order_relaxed); });
    ++mine;
  }
  posted += mine;
  ++finished;
  state.SetItemsProcessed(mine);
  if (state.thread_index() == 0) {
    while (finished.load() < state.threads() || ran.load() < posted.load()) {
      std::this_thread::yield();
    }
    delete running;
    running = nullptr;
  }
}
BENCHMARK(BM_PostTwoProducers)->Threads(2)->UseRealTime();

// Ping-pong, caller spinning: post a task to a loop blocked in epoll_wait,
// the task flips a flag the caller spins on. One iteration = eventfd wake-up
// of the loop + task run + the caller seeing it.
void BM_PostWakeupLatencySpin(benchmark::State& state) {
  RunningLoop running;
  std::atomic<uint64_t> pong{0};
  uint64_t ping = 0;
  for (auto _ : state) {
    ++ping;
    running.loop().Post([&pong, ping] { pong.store(ping, std::memory_order_release); });
    while (pong.load(std::memory_order_acquire) != ping) {
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PostWakeupLatencySpin)->UseRealTime();

// Ping-pong, both sides sleeping: the caller blocks on an eventfd that the
// task writes. Two kernel wake-ups per round trip, as between two workers.
void BM_PostWakeupLatencyBlocking(benchmark::State& state) {
  RunningLoop running;
  const int back = ::eventfd(0, EFD_CLOEXEC);
  for (auto _ : state) {
    running.loop().Post([back] {
      uint64_t one = 1;
      (void)!::write(back, &one, sizeof(one));
    });
    uint64_t value;
    (void)!::read(back, &value, sizeof(value));
  }
  ::close(back);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PostWakeupLatencyBlocking)->UseRealTime();

// Baseline: tasks posted and run on the loop's own thread (no wake-up).
void BM_PostAndRunSameThread(benchmark::State& state) {
  auto loop = EventLoop::Create().value();
  int64_t ran = 0;
  for (auto _ : state) {
    for (int i = 0; i < 64; ++i) loop->Post([&ran] { ++ran; });
    loop->RunOnce(Duration::zero());
  }
  state.SetItemsProcessed(ran);
}
BENCHMARK(BM_PostAndRunSameThread);

}  // namespace
}  // namespace zrelay
