// EngineListener: one listener of the Engine, whatever it carries: TCP
// streams (RelayListener: a pair per client) or UDP datagrams (UdpListener:
// a flow per client address). The Engine starts, reconfigures, stops and
// retires every listener through this interface, and each one counts the
// pairs or flows still using it (holds), so that a retired listener stays
// whole until the last of them is gone.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <vector>

#include "engine/address.h"
#include "engine/listener.h"
#include "engine/result.h"
#include "engine/worker_pool.h"
#include "relay/listener_counters.h"
#include "relay/metrics.h"
#include "relay/relay.h"

namespace zrelay {

class ListenerReaper;

class EngineListener {
 public:
  virtual ~EngineListener() = default;
  EngineListener(const EngineListener&) = delete;
  EngineListener& operator=(const EngineListener&) = delete;

  // Resolves the backends, binds every address (or adopts the
  // options().inherited_sockets bound to it), then takes clients. On
  // failure, call Shutdown() before destroying it. Any non-worker thread.
  virtual Status Start(WorkerPool& pool) = 0;
  // Stops taking clients and re-resolving (Drain, shutdown).
  virtual void Stop() = 0;
  // Stop(), then ends what runs on the workers' loops for it (the pool's
  // checks and timers). Before the loops stop, or before a listener that
  // failed to start is destroyed.
  virtual void Shutdown(WorkerPool& pool) = 0;

  // dup()s of the listening sockets with their addresses (before Stop()).
  virtual Result<std::vector<ListeningSocket>> ListeningSockets() const = 0;
  // The options as given (addresses before binding; max_connections as
  // resolved by the Engine).
  const ListenOptions& options() const { return options_; }
  size_t max_connections() const { return options_.max_connections; }
  // Every bound address, in the order given.
  virtual std::vector<Address> addresses() const = 0;
  Address address() const { return addresses().front(); }
  // What the engine's listening sockets counted on `worker`.
  virtual ListenerStats Stats(size_t worker) const = 0;
  const std::shared_ptr<ListenerCounters>& counters() const { return counters_; }
  // Its counters, addresses and current backends. Any thread, once started.
  virtual ListenerMetrics Metrics() const = 0;

  // After Shutdown(): hands the listener over to `reaper`, to be destroyed
  // once its last pair or flow has closed (at once when none is open). Once.
  void Retire(ListenerReaper& reaper);

 protected:
  EngineListener(ListenOptions options, std::shared_ptr<ListenerCounters> counters)
      : options_(std::move(options)), counters_(std::move(counters)) {}

  // A pair or flow starts using the listener / is done with it. The last
  // drop after Retire() hands the listener to the reaper: nothing of it may
  // be touched after a DropHold().
  void AddHold() { holds_.fetch_add(1, std::memory_order_relaxed); }
  void DropHold();

  const ListenOptions options_;
  const std::shared_ptr<ListenerCounters> counters_;

 private:
  // Open pairs or flows, plus one until Retire(). Their worker threads and
  // the retiring thread share it.
  std::atomic<size_t> holds_{1};
  ListenerReaper* reaper_ = nullptr;  // set by Retire(), before its drop
};

}  // namespace zrelay
