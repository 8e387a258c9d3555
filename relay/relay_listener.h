// RelayListener: one ListenOptions at work. Accepts clients on every worker,
// on each of its addresses, and pairs each with a backend endpoint its pool
// picks, connected on the same worker. Each pair holds one of its address's
// max_connections slots until it closes. The Engine owns its listeners.
// What its pairs do is counted in a ListenerCounters it shares, so a
// listener that takes over from it (a reload) can keep the same counts.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/listener.h"
#include "engine/worker_pool.h"
#include "relay/backend_pool.h"
#include "relay/listener_counters.h"
#include "relay/pair.h"
#include "relay/relay.h"
#include "relay/resolver.h"
#include "relay/worker.h"

namespace zrelay {

class RelayListener {
 public:
  // `counters`: a fresh ListenerCounters for a new listener, or the one of
  // the listener this one replaces.
  RelayListener(std::vector<std::unique_ptr<Worker>>& workers, ListenOptions options,
                const EngineOptions& engine, std::shared_ptr<ListenerCounters> counters);

  // Resolves the backends, binds every address, then accepts. On failure,
  // call Shutdown() before destroying it. Any non-worker thread.
  Status Start(WorkerPool& pool);

  // Stops accepting and re-resolving (Drain, shutdown).
  void Stop();
  // Stop(), then ends what the pool runs on worker 0's loop (active checks,
  // ejection timers), on that loop. Before the loops stop, or before a
  // listener that failed to start is destroyed.
  void Shutdown(WorkerPool& pool);

  const Address& address() const { return acceptors_.front()->listener->local_address(); }
  std::vector<Address> addresses() const;
  size_t max_connections() const { return options_.max_connections; }
  // The engine listeners' counters on `worker`, summed over the addresses.
  ListenerStats Stats(size_t worker) const;
  const std::shared_ptr<ListenerCounters>& counters() const { return counters_; }
  // Its counters, addresses and current backends. Any thread, once started.
  ListenerMetrics Metrics() const;

 private:
  // One of the listener's addresses: its pairs give their slot back to it.
  struct AddressAcceptor final : AcceptHandler {
    explicit AddressAcceptor(RelayListener* o) : owner(o) {}
    void OnAccept(size_t worker, UniqueFd fd, const Address& peer) override {
      owner->OnAccept(*this, worker, std::move(fd), peer);
    }
    RelayListener* owner;
    std::unique_ptr<Listener> listener;
  };

  void OnAccept(AddressAcceptor& acceptor, size_t worker, UniqueFd fd, const Address& peer);
  // On the pair's worker.
  void OnPairClosed(AddressAcceptor& acceptor, const PairStats& stats);
  // A pool generation of `endpoints`, each counting into counters_.
  Result<std::shared_ptr<PoolGeneration>> NewGeneration(std::vector<Endpoint> endpoints);
  // On the resolver's thread.
  void OnResolved(const std::vector<std::string>& lines,
                  std::optional<std::vector<Endpoint>> endpoints);

  std::vector<std::unique_ptr<Worker>>& workers_;
  const ListenOptions options_;
  const std::shared_ptr<ListenerCounters> counters_;
  BackendRoute route_;
  std::vector<std::unique_ptr<AddressAcceptor>> acceptors_;
  std::unique_ptr<BackendPool> pool_;
  // Last: its thread stops before the pool it installs into goes.
  std::unique_ptr<Resolver> resolver_;
};

}  // namespace zrelay
