// WorkerPool: threads, worker indexes, pinning, SIGPIPE, Stop.
#include "engine/worker_pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

std::unique_ptr<WorkerPool> StartPool(int workers, bool pin = false) {
  WorkerPoolOptions options;
  options.workers = workers;
  options.pin_cpus = pin;
  auto pool = WorkerPool::Start(options);
  EXPECT_TRUE(pool.ok()) << pool.error().message();
  return std::move(pool).value();
}

std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

TEST(WorkerPoolTest, RunOnEachRunsOnEveryWorkerThreadWithItsIndex) {
  auto pool = StartPool(4);
  ASSERT_EQ(pool->size(), 4u);
  std::mutex mu;
  std::set<std::thread::id> threads;
  std::vector<int> current(4, -2);
  std::vector<bool> in_loop(4, false);
  pool->RunOnEach([&](size_t worker) {
    std::lock_guard<std::mutex> lock(mu);
    threads.insert(std::this_thread::get_id());
    current[worker] = WorkerPool::CurrentWorker();
    in_loop[worker] = pool->loop(worker).InLoopThread();
  });
  EXPECT_EQ(threads.size(), 4u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(current[i], i);
    EXPECT_TRUE(in_loop[i]);
  }
  EXPECT_EQ(WorkerPool::CurrentWorker(), -1);  // not a worker thread
}

TEST(WorkerPoolTest, DefaultSizeIsTheUsableCpuCount) {
  auto pool = StartPool(0);
  EXPECT_EQ(pool->size(), AllowedCpus().size());
}

TEST(WorkerPoolTest, ThreadsAreNamed) {
  auto pool = StartPool(2);
  std::vector<std::string> names(2);
  pool->RunOnEach([&](size_t worker) {
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof(name));
    names[worker] = name;
  });
  EXPECT_EQ(names[0], "zrelay-w0");
  EXPECT_EQ(names[1], "zrelay-w1");
}

TEST(WorkerPoolTest, SigpipeIsBlockedInWorkersOnly) {
  auto pool = StartPool(2);
  std::vector<int> blocked(2, -1);
  pool->RunOnEach([&](size_t worker) {
    sigset_t set;
    pthread_sigmask(SIG_BLOCK, nullptr, &set);
    blocked[worker] = sigismember(&set, SIGPIPE);
  });
  EXPECT_EQ(blocked[0], 1);
  EXPECT_EQ(blocked[1], 1);
  // The process-wide state (this thread) is left alone.
  sigset_t mine;
  pthread_sigmask(SIG_BLOCK, nullptr, &mine);
  EXPECT_EQ(sigismember(&mine, SIGPIPE), 0);
}

TEST(WorkerPoolTest, PinningPinsWorkerIToTheIthAllowedCpu) {
  const std::vector<int> cpus = AllowedCpus();
  const int workers = static_cast<int>(cpus.size()) + 1;  // the last one wraps around
  auto pool = StartPool(workers, /*pin=*/true);
  std::vector<std::vector<int>> affinity(workers);
  std::vector<int> running_on(workers, -1);
  pool->RunOnEach([&](size_t worker) {
    cpu_set_t set;
    CPU_ZERO(&set);
    pthread_getaffinity_np(pthread_self(), sizeof(set), &set);
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) affinity[worker].push_back(cpu);
    }
    running_on[worker] = sched_getcpu();
  });
  for (int i = 0; i < workers; ++i) {
    const int expected = cpus[i % cpus.size()];
    EXPECT_EQ(affinity[i], std::vector<int>{expected}) << "worker " << i;
    EXPECT_EQ(running_on[i], expected) << "worker " << i;
  }
}

TEST(WorkerPoolTest, UnpinnedWorkersKeepTheProcessAffinity) {
  auto pool = StartPool(2);
  std::vector<size_t> count(2);
  pool->RunOnEach([&](size_t worker) {
    cpu_set_t set;
    CPU_ZERO(&set);
    pthread_getaffinity_np(pthread_self(), sizeof(set), &set);
    count[worker] = static_cast<size_t>(CPU_COUNT(&set));
  });
  EXPECT_EQ(count[0], AllowedCpus().size());
  EXPECT_EQ(count[1], AllowedCpus().size());
}

TEST(WorkerPoolTest, PostToAWorkerRunsThere) {
  auto pool = StartPool(3);
  std::atomic<int> where{-2};
  pool->loop(2).Post([&] { where = WorkerPool::CurrentWorker(); });
  ASSERT_TRUE(testing::WaitFor([&] { return where.load() != -2; }));
  EXPECT_EQ(where.load(), 2);
}

TEST(WorkerPoolTest, StopIsIdempotentAndRunOnEachStillWorksAfterIt) {
  auto pool = StartPool(2);
  pool->Stop();
  pool->Stop();
  // With no threads left, RunOnEach runs inline (used by teardown code).
  int calls = 0;
  pool->RunOnEach([&](size_t) { ++calls; });
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace zrelay
