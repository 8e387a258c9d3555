// Worker: the relay's state on one engine worker thread. Everything here is
// written only by that thread, so the data path takes no lock; its counters
// (and its pools') are relaxed atomics that other threads may read.
#pragma once

#include <cstddef>
#include <vector>

#include "engine/event_loop.h"
#include "relay/buffer_pool.h"
#include "relay/connection_list.h"
#include "relay/pipe_pool.h"
#include "relay/pump.h"
#include "relay/relay.h"
#include "relay/ring_buffer.h"
#include "relay/worker_counters.h"

namespace zrelay {

class ConnectionImpl;
class Pair;

// Something of a listener's that lives on a worker's loop besides pairs and
// Connections (a UDP listener's flows), and that Drain and the worker's end
// must reach.
class WorkerTenant {
 public:
  virtual ~WorkerTenant() = default;
  // Drain's deadline: close everything still open (kDrained).
  virtual void AbortAll() = 0;
  // The worker is being destroyed: close everything, without callbacks,
  // and never touch the worker again.
  virtual void WorkerClosing() = 0;
};

class Worker {
 public:
  Worker(size_t index, EventLoop& loop, const EngineOptions& options);
  ~Worker();  // destroys every pair still open, without calling on_close
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  size_t index() const { return index_; }
  EventLoop& loop() { return loop_; }
  const EngineOptions& options() const { return options_; }
  PumpEnv& env() { return env_; }
  WorkerCounters& stats() { return stats_; }

  // Pair bookkeeping (the worker's intrusive list of open pairs).
  void Adopt(Pair* pair);
  void Forget(Pair* pair);
  size_t open_pairs() const { return open_; }

  // A pair whose pump found the buffer pool dry waits here. After every
  // pump run, if a ring is free again, the waiters are put on the ready list
  // (they compete for it again next turn; the losers wait once more).
  void WaitForBuffer(Pair* pair);
  void WakeBufferWaitersIfFree();

  // Drain's deadline: aborts every open pair (kDrained) and closes every
  // Connection still in its protocol phase.
  void AbortAll();

  // The Connections (protocol phase) alive on this worker.
  void AddConnection(ConnectionImpl* connection);
  void RemoveConnection(ConnectionImpl* connection);  // a no-op when not listed
  size_t open_connections() const { return connections_.size(); }

  // Tenants registered here until they remove themselves (or the worker
  // ends). The worker's thread.
  void AddTenant(WorkerTenant* tenant);
  void RemoveTenant(WorkerTenant* tenant);  // a no-op when not listed

  // Counters, with the pools' gauges filled in. Any thread.
  WorkerStats Snapshot() const;

 private:
  size_t index_;
  EventLoop& loop_;
  const EngineOptions& options_;
  PipePool pipes_;
  BufferPool buffers_;
  WorkerCounters stats_;
  RingBuffer scratch_;  // filtered reads (PumpEnv::scratch)
  PumpEnv env_;
  Pair* head_ = nullptr;
  size_t open_ = 0;
  std::vector<Pair*> buffer_waiters_;
  std::vector<WorkerTenant*> tenants_;
  // Last: destroyed first, closing Connections still open while the rest
  // of the worker is whole.
  ConnectionList connections_;
};

}  // namespace zrelay
