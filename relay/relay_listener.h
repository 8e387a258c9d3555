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
#include "relay/engine_listener.h"
#include "relay/listener_counters.h"
#include "relay/pair.h"
#include "relay/relay.h"
#include "relay/worker.h"
#include "ssl/tls_context.h"

namespace zrelay {

class RelayListener final : public EngineListener {
 public:
  // Takes a reference to every SSL_CTX in `options` for as long as it
  // lives, so its caller may free them as soon as Listen or Reconfigure
  // returned. `counters`: a fresh ListenerCounters for a new listener, or
  // the one of the listener this one replaces.
  RelayListener(std::vector<std::unique_ptr<Worker>>& workers, ListenOptions options,
                const EngineOptions& engine, std::shared_ptr<ListenerCounters> counters);

  Status Start(WorkerPool& pool) override;
  void Stop() override;
  // Also ends what the pool runs on worker 0's loop (active checks,
  // ejection timers).
  void Shutdown(WorkerPool& pool) override;
  Result<std::vector<ListeningSocket>> ListeningSockets() const override;
  std::vector<Address> addresses() const override;
  // The engine listeners' counters on `worker`, summed over the addresses.
  ListenerStats Stats(size_t worker) const override;
  // Its counters, addresses and current backends (its own, then each
  // route's).
  ListenerMetrics Metrics() const override;

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

  std::vector<std::unique_ptr<Worker>>& workers_;
  // Our references to the SSL_CTXs options_ points at (client and backends).
  std::vector<TlsContext> tls_refs_;
  // Its own backends first, then one group per route (options_.routes).
  std::vector<std::unique_ptr<BackendGroup>> groups_;
  ClientRouting routing_;         // points into groups_ (unused with on_accept: no groups)
  Duration handshake_timeout_{};  // on_accept with tls: the client's handshake
  std::vector<std::unique_ptr<AddressAcceptor>> acceptors_;
};

}  // namespace zrelay
