// BackendGroup: one set of a listener's backends at work: the resolver of
// its host backends, the BackendPool its endpoints form, and the
// BackendRoute its pairs connect through. A listener has one for its own
// backends and one per route (ListenOptions::routes); each balances with
// its own policy and shares the listener's health, ejection, retry,
// timeout and resolve settings.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/result.h"
#include "engine/worker_pool.h"
#include "relay/backend_pool.h"
#include "relay/listener_counters.h"
#include "relay/metrics.h"
#include "relay/pair.h"
#include "relay/relay.h"
#include "relay/resolver.h"

namespace zrelay {

class BackendGroup {
 public:
  // `route_name`: the route's (RouteOptions::name, or its number when
  // unnamed), empty for the listener's own backends. `listener` and `counters` outlive the group.
  BackendGroup(std::string route_name, std::vector<BackendOptions> backends,
               BalancePolicy balance, const ListenOptions& listener,
               const EngineOptions& engine, ListenerCounters& counters);
  ~BackendGroup();  // stops re-resolving before the pool goes
  BackendGroup(const BackendGroup&) = delete;
  BackendGroup& operator=(const BackendGroup&) = delete;

  // Resolves the host backends and makes the endpoints the pool starts
  // with; fails naming a host without an address, or a bad endpoint list.
  // The caller's thread, before Start().
  Status Resolve();
  // Makes the pool on `loops` and re-resolves every resolve_interval.
  // `listener_label`: the listener's name, or its bound address, for the
  // pool's event lines.
  void Start(WorkerPool& loops, const std::string& listener_label);
  // Stops re-resolving. Idempotent.
  void StopResolving();
  // Ends what the pool runs on worker 0's loop (active checks, ejection
  // timers); on that loop. A no-op before Start().
  void StopOnLoop();

  const BackendRoute& route() const { return route_; }
  // The pool's current endpoints, each naming this group's route.
  std::vector<BackendMetrics> Metrics() const;

 private:
  // A pool generation of `endpoints`, each counting into the listener's
  // counters under this group's route.
  Result<std::shared_ptr<PoolGeneration>> NewGeneration(std::vector<Endpoint> endpoints);
  // On the resolver's thread.
  void OnResolved(const std::vector<std::string>& lines,
                  std::optional<std::vector<Endpoint>> endpoints);

  const std::string route_name_;
  const BalancePolicy balance_;
  const ListenOptions& listener_;
  ListenerCounters& counters_;
  BackendRoute route_;
  std::shared_ptr<PoolGeneration> first_;  // from Resolve() until Start()
  std::unique_ptr<BackendPool> pool_;
  // Last: its thread stops before the pool it installs into goes.
  std::unique_ptr<Resolver> resolver_;
};

}  // namespace zrelay
