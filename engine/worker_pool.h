// WorkerPool: N threads, each running its own EventLoop (share nothing).
//
// A connection pair lives wholly on one worker; other threads reach a worker
// only by posting to its loop. Worker threads block SIGPIPE for themselves
// (splice() into a socket whose peer is gone raises it and has no
// MSG_NOSIGNAL), leaving the process-wide disposition to the embedder.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "engine/event_loop.h"
#include "engine/result.h"

namespace zrelay {

struct WorkerPoolOptions {
  int workers = 0;        // 0: one per online CPU
  bool pin_cpus = false;  // worker i pinned to the i-th CPU the process may use
  IoBackend io = IoBackend::kEpoll;  // what every worker's loop waits with
};

class WorkerPool {
 public:
  // Creates the loops and starts the threads. Errors (epoll_create, io_uring
  // unavailable, a CPU that cannot be pinned) name the worker.
  static Result<std::unique_ptr<WorkerPool>> Start(const WorkerPoolOptions& options);
  ~WorkerPool();  // Stop()
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  size_t size() const { return loops_.size(); }
  // The backend the loops wait with (kAuto resolved).
  IoBackend io() const { return loops_.front()->io(); }
  EventLoop& loop(size_t worker) { return *loops_[worker]; }

  // Runs `fn(worker)` on every worker's thread and waits for all to finish.
  // Must not be called from a worker thread.
  void RunOnEach(const std::function<void(size_t worker)>& fn);

  // Stops every loop and joins the threads. Idempotent.
  void Stop();

  // Index of the worker whose thread calls this, or -1 on other threads.
  static int CurrentWorker();

 private:
  WorkerPool() = default;
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::vector<std::thread> threads_;
};

}  // namespace zrelay
