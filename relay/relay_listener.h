// RelayListener: one ListenOptions at work. Accepts clients on every worker,
// on each of its addresses, and hands each to on_accept as a Connection, or
// pairs it with a backend endpoint its pool
// (or the pool of the route the client's preamble picked) picks, connected
// on the same worker. Each pair holds one of its address's
// max_connections slots until it closes. The Engine owns its listeners;
// once one stops taking clients (Reconfigure, Close) it is retired: it stays
// whole until its last pair closed (its pairs use its route, pool and TLS
// contexts), then a ListenerReaper destroys it. What its pairs do is counted
// in a ListenerCounters it shares, so a listener that takes over from it (a
// reload) keeps the same counts.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/listener.h"
#include "engine/worker_pool.h"
#include "relay/backend_group.h"
#include "relay/listener_counters.h"
#include "relay/pair.h"
#include "relay/relay.h"
#include "relay/worker.h"
#include "ssl/tls_context.h"

namespace zrelay {

class ListenerReaper;

class RelayListener {
 public:
  // Takes a reference to every SSL_CTX in `options` for as long as it
  // lives, so its caller may free them as soon as Listen or Reconfigure
  // returned. `counters`: a fresh ListenerCounters for a new listener, or
  // the one of the listener this one replaces.
  RelayListener(std::vector<std::unique_ptr<Worker>>& workers, ListenOptions options,
                const EngineOptions& engine, std::shared_ptr<ListenerCounters> counters);

  // Resolves the backends, binds every address (or adopts the
  // options.inherited_sockets bound to it), then accepts. On failure,
  // call Shutdown() before destroying it. Any non-worker thread.
  Status Start(WorkerPool& pool);

  // Stops accepting and re-resolving (Drain, shutdown).
  void Stop();
  // Stop(), then ends what the pool runs on worker 0's loop (active checks,
  // ejection timers), on that loop. Before the loops stop, or before a
  // listener that failed to start is destroyed.
  void Shutdown(WorkerPool& pool);

  // After Shutdown(): hands the listener over to `reaper`, to be destroyed
  // once its last pair has closed (at once when none is open). Once.
  void Retire(ListenerReaper& reaper);

  // dup()s of the listening sockets with their addresses (before Stop()).
  Result<std::vector<ListeningSocket>> ListeningSockets() const;
  // The options as given (addresses before binding; max_connections as
  // resolved by the Engine).
  const ListenOptions& options() const { return options_; }

  const Address& address() const { return acceptors_.front()->listener->local_address(); }
  std::vector<Address> addresses() const;
  size_t max_connections() const { return options_.max_connections; }
  // The engine listeners' counters on `worker`, summed over the addresses.
  ListenerStats Stats(size_t worker) const;
  const std::shared_ptr<ListenerCounters>& counters() const { return counters_; }
  // Its counters, addresses and current backends (its own, then each
  // route's). Any thread, once started.
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
  // on_accept: the client becomes a Connection (TLS-handshaken first with
  // options_.tls) handed to the embedder.
  void AcceptConnection(AddressAcceptor& acceptor, Worker& worker, UniqueFd fd,
                        const Address& peer);
  // On the pair's worker.
  void OnPairClosed(AddressAcceptor& acceptor, const PairStats& stats);
  // Drops one hold; the last one hands the listener to the reaper.
  void DropHold();

  std::vector<std::unique_ptr<Worker>>& workers_;
  const ListenOptions options_;
  // Our references to the SSL_CTXs options_ points at (client and backends).
  std::vector<TlsContext> tls_refs_;
  // Open pairs, plus one until Retire(): the listener is done with when it
  // drops to 0. The pairs' worker threads and the retiring thread share it.
  std::atomic<size_t> holds_{1};
  ListenerReaper* reaper_ = nullptr;  // set by Retire(), before its drop
  const std::shared_ptr<ListenerCounters> counters_;
  // Its own backends first, then one group per route (options_.routes).
  std::vector<std::unique_ptr<BackendGroup>> groups_;
  ClientRouting routing_;  // points into groups_ (unused with on_accept: no groups)
  Duration handshake_timeout_{};  // on_accept with tls: the client's handshake
  std::vector<std::unique_ptr<AddressAcceptor>> acceptors_;
};

}  // namespace zrelay
