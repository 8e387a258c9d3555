#include "engine/worker_pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <condition_variable>
#include <future>
#include <cstring>
#include <mutex>
#include <string>

#include "engine/check.h"

namespace zrelay {
namespace {

thread_local int t_current_worker = -1;

// The CPUs this process may run on, in ascending order.
std::vector<int> AllowedCpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
  }
  return cpus;
}

// Per-thread setup; returns an Error naming the worker on failure.
Status SetUpWorkerThread(size_t index, int pin_cpu) {
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGPIPE);
  int rc = pthread_sigmask(SIG_BLOCK, &block, nullptr);
  if (rc != 0) return Error::FromErrno(rc, "worker " + std::to_string(index) + ": block SIGPIPE");

  const std::string name = "zrelay-w" + std::to_string(index);  // <= 15 chars for any sane index
  (void)pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());  // cosmetic

  if (pin_cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(pin_cpu, &set);
    rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (rc != 0) {
      return Error::FromErrno(rc, "worker " + std::to_string(index) + ": pin to CPU " +
                                      std::to_string(pin_cpu));
    }
  }
  t_current_worker = static_cast<int>(index);
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<WorkerPool>> WorkerPool::Start(const WorkerPoolOptions& options) {
  const std::vector<int> cpus = AllowedCpus();
  size_t count = static_cast<size_t>(options.workers);
  if (options.workers <= 0) {
    count = !cpus.empty() ? cpus.size() : std::max(1u, std::thread::hardware_concurrency());
  }
  if (options.pin_cpus && cpus.empty()) {
    return Error::FromErrno(errno, "worker pool: cannot read the CPU affinity to pin workers");
  }

  std::unique_ptr<WorkerPool> pool(new WorkerPool());
  pool->loops_.resize(count);
  // Each thread creates its own loop: an io_uring belongs to the thread that
  // sets it up (the kernel signals that thread when the ring is torn down,
  // which would interrupt whatever the creator is blocked in by then). The
  // threads start one at a time, so kAuto is decided by the first worker
  // and holds for all, and a setup failure (a CPU that cannot be pinned, no
  // io_uring) stops Start() before the next one.
  IoBackend io = options.io;
  for (size_t i = 0; i < count; ++i) {
    // More workers than CPUs wrap around the allowed set.
    const int pin = options.pin_cpus ? cpus[i % cpus.size()] : -1;
    std::promise<Status> setup;
    std::future<Status> reported = setup.get_future();
    std::unique_ptr<EventLoop>* slot = &pool->loops_[i];
    pool->threads_.emplace_back([i, pin, io, slot, &setup] {
      Status s = SetUpWorkerThread(i, pin);
      if (s) {
        Result<std::unique_ptr<EventLoop>> loop = EventLoop::Create({io});
        if (loop) {
          *slot = std::move(loop).value();
        } else {
          s = Error(loop.error().code(), "worker " + std::to_string(i) + ": " + loop.error().message());
        }
      }
      EventLoop* mine = slot->get();
      setup.set_value(std::move(s));  // `setup` is gone after this line
      if (mine != nullptr) mine->Run();
    });
    Status s = reported.get();
    if (!s) {
      pool->loops_.resize(i);  // the loops that run; Stop() joins every thread
      pool->Stop();
      return s.error();
    }
    io = pool->loops_[i]->io();
  }
  return pool;
}

WorkerPool::~WorkerPool() { Stop(); }

void WorkerPool::RunOnEach(const std::function<void(size_t worker)>& fn) {
  ZR_CHECK(CurrentWorker() < 0, "RunOnEach from worker %d would deadlock", CurrentWorker());
  if (threads_.empty()) {
    // Stopped: no loop runs, so the caller's thread may touch them directly.
    for (size_t i = 0; i < loops_.size(); ++i) fn(i);
    return;
  }
  std::mutex mu;
  std::condition_variable cv;
  size_t remaining = loops_.size();
  for (size_t i = 0; i < loops_.size(); ++i) {
    loops_[i]->Post([i, &fn, &mu, &cv, &remaining] {
      fn(i);
      std::lock_guard<std::mutex> lock(mu);
      if (--remaining == 0) cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return remaining == 0; });
}

void WorkerPool::Stop() {
  for (auto& loop : loops_) loop->Stop();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
}

int WorkerPool::CurrentWorker() { return t_current_worker; }

}  // namespace zrelay
