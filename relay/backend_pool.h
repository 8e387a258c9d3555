// BackendPool: a listener's backends as endpoints its pairs connect to.
//
// An endpoint is one address to connect: a literal backend is one, a host
// backend is one per address its name resolves to. The endpoints of a pool
// form a PoolGeneration: a BackendSet and a Balancer over them, plus the
// passive-health state of each endpoint. When a host's addresses change, a
// new generation replaces the current one (Install); a pair keeps the
// generation it picked from alive, with its lease, until it closes, so the
// old generation goes away with its last pair.
//
// Each worker has its own lane: the generation it picks from and its own
// Picker. Picking and reporting connect results take no lock; the counters
// workers share are atomics. Ejections and returns (passive health) are
// timed on worker 0's loop, and the active health checker of the current
// generation (one per generation, when the listener asks for checks) runs
// there too.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/address.h"
#include "engine/clock.h"
#include "engine/result.h"
#include "engine/timer_wheel.h"
#include "engine/worker_pool.h"
#include "relay/balancer.h"
#include "relay/health_checker.h"
#include "relay/listener_counters.h"
#include "relay/relay.h"

namespace zrelay {

struct Endpoint {
  Address address;
  SSL_CTX* tls = nullptr;  // not owned
  std::string sni;         // a host backend's name when its own sni is empty
  uint32_t weight = 1;
  std::string host{};  // the host name it was resolved from; empty for a literal
  BackendOptions::SendProxy send_proxy = BackendOptions::SendProxy::kNone;
  // Where its connects are counted: set by the listener when it makes the
  // generation, and lives as long as the listener's counters.
  EndpointCounters* counters = nullptr;
};

class PoolGeneration {
 public:
  // Fails, naming the culprit, on an empty list, a weight out of range or an
  // address listed twice (BackendSet's rules).
  static Result<std::shared_ptr<PoolGeneration>> Create(std::vector<Endpoint> endpoints,
                                                        BalancePolicy policy);
  PoolGeneration(const PoolGeneration&) = delete;
  PoolGeneration& operator=(const PoolGeneration&) = delete;

  size_t size() const { return endpoints_.size(); }
  const Endpoint& endpoint(size_t i) const { return endpoints_[i]; }
  const std::vector<Endpoint>& endpoints() const { return endpoints_; }
  BackendSet& set() { return *set_; }
  const Balancer& balancer() const { return *balancer_; }

  // Passive health of endpoint i: consecutive connect failures, and whether
  // it is ejected for them. Active health: whether a check marked it down.
  // An endpoint is healthy (in the BackendSet) when neither holds.
  std::atomic<int>& failures(size_t i) { return state_[i].failures; }
  std::atomic<bool>& ejected(size_t i) { return state_[i].ejected; }
  std::atomic<bool>& down(size_t i) { return state_[i].down; }
  // Recomputes endpoint i's health flag from `ejected` and `down`.
  void UpdateHealthy(size_t i);

 private:
  PoolGeneration() = default;

  // Its own cache line per endpoint: workers write `failures` on every
  // failed connect.
  struct alignas(64) EndpointState {
    std::atomic<int> failures{0};
    std::atomic<bool> ejected{false};
    std::atomic<bool> down{false};
  };

  std::vector<Endpoint> endpoints_;
  std::unique_ptr<BackendSet> set_;
  std::unique_ptr<Balancer> balancer_;
  std::unique_ptr<EndpointState[]> state_;
};

// The endpoint a pair connects to, counted against it while held. The
// lease is released before the generation it points into goes (declared
// last, it is destroyed first; assignment releases it first).
struct BackendChoice {
  BackendChoice() = default;
  BackendChoice(BackendChoice&& other) noexcept = default;
  BackendChoice& operator=(BackendChoice&& other) noexcept {
    lease.Release();
    generation = std::move(other.generation);
    index = other.index;
    lease = std::move(other.lease);
    return *this;
  }

  std::shared_ptr<PoolGeneration> generation;
  size_t index = 0;
  BackendLease lease;

  const Endpoint& endpoint() const { return generation->endpoint(index); }
};

struct PoolOptions {
  std::string label;  // the listener's name (or address), for event lines
  BalancePolicy policy = BalancePolicy::kRoundRobin;
  int eject_after = 3;  // 0: no passive health
  Duration eject_for = seconds(10);
  std::optional<HealthCheckOptions> health;  // unset: no active checks
  OnListenerEvent on_event;
};

class BackendPool {
 public:
  // `loops` runs the workers; `first` is the generation they start with.
  BackendPool(WorkerPool& loops, PoolOptions options, std::shared_ptr<PoolGeneration> first);
  // After StopOnLoop() ran, or after the loops stopped.
  ~BackendPool();

  // Stops what the pool runs on worker 0's loop: active checks and
  // ejection timers (their endpoints stay as they are). Worker 0's thread;
  // once no generation will be installed any more.
  void StopOnLoop();
  BackendPool(const BackendPool&) = delete;
  BackendPool& operator=(const BackendPool&) = delete;

  // For a client accepted on `worker` (its thread): a healthy endpoint of
  // the worker's current generation, leased. nullopt when none is healthy
  // (and an event line, at most one a second).
  std::optional<BackendChoice> Pick(size_t worker, const Address& client);
  // After a failed connect: another healthy endpoint of the same generation,
  // none of `tried` (indices in it): the next healthy one after the last
  // tried, in order. Not the policy's picker: a retry that took a
  // round-robin turn would hand the next client the failing endpoint again
  // (with two endpoints, every client would try the dead one first).
  std::optional<BackendChoice> PickAgain(const std::shared_ptr<PoolGeneration>& generation,
                                         const std::vector<size_t>& tried);
  // Healthy endpoints of the generation not in `tried`.
  static size_t HealthyUntried(PoolGeneration& generation, const std::vector<size_t>& tried);

  // Connect results, from the pair's worker, counted in the endpoint's
  // counters. A failure counts towards ejecting the endpoint; a success
  // (`latency` after its start) resets the count.
  void ConnectFailed(const BackendChoice& choice, const Error& error);
  void ConnectSucceeded(const BackendChoice& choice, Duration latency);

  // Makes `generation` the one new clients pick from, on every worker.
  // Any non-worker thread.
  void Install(std::shared_ptr<PoolGeneration> generation);

  // Passes "listener LABEL: what" to on_event, if any.
  void Event(const std::string& what) const;

  // The endpoints of the generation installed last, with their health,
  // open pairs (through any generation still alive) and connect counters.
  // Any thread; takes no lock a worker takes.
  std::vector<BackendMetrics> Metrics() const;

 private:
  // An ejected endpoint's way back: a timer on worker 0's loop.
  struct Ejection final : TimerHandler {
    Ejection(BackendPool* p, std::shared_ptr<PoolGeneration> g, size_t i)
        : pool(p), generation(std::move(g)), index(i), timer(this) {}
    void OnTimer(Timer& /*timer*/) override { pool->Return(this); }
    BackendPool* pool;
    std::shared_ptr<PoolGeneration> generation;
    size_t index;
    Timer timer;
  };
  struct alignas(64) Lane {
    std::shared_ptr<PoolGeneration> generation;
    std::unique_ptr<Picker> picker;
  };

  std::optional<BackendChoice> Lease(const std::shared_ptr<PoolGeneration>& generation,
                                     size_t index);
  void Eject(const BackendChoice& choice, int failures, const Error& error);
  void Return(Ejection* ejection);  // worker 0's thread
  void NoHealthy();
  // Worker 0's thread: replaces the checker with one for `generation`.
  void StartChecks(const std::shared_ptr<PoolGeneration>& generation);
  // An active check marked endpoint `index` of `generation` down or up.
  void SetDown(PoolGeneration& generation, size_t index, bool down, const std::string& reason);

  WorkerPool& loops_;
  const PoolOptions options_;
  std::vector<Lane> lanes_;                 // lanes_[w]: worker w's thread only
  std::list<Ejection> ejections_;           // worker 0's thread only
  std::unique_ptr<HealthChecker> checker_;  // worker 0's thread only
  // Steady-clock milliseconds before which "no healthy backend" is not
  // logged again.
  std::atomic<int64_t> quiet_until_ms_{0};
  // For Metrics(); the workers pick from their lanes and never touch
  // these. The generation installed last, and every installed one that
  // open pairs still hold (their leases are open pairs too).
  mutable std::mutex current_mu_;
  std::shared_ptr<PoolGeneration> current_;               // guarded by current_mu_
  std::vector<std::weak_ptr<PoolGeneration>> installed_;  // guarded by current_mu_
};

}  // namespace zrelay
