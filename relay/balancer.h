// Balancing: which backend of a listener's list each new client goes to.
//
// A listener owns one BackendSet (addresses, weights, health flags and
// open-pair counters, shared by all its workers) and one Balancer built over
// it for its policy. Each worker takes its own Picker from the Balancer and
// calls Pick() for every accepted client on its own thread: a pick takes no
// lock, allocates nothing and writes no memory another worker reads.
//
//   auto backends = BackendSet::Create({{a, 1}, {b, 2}});        // Result
//   auto balancer = Balancer::Create(BalancePolicy::kMaglev, **backends);
//   std::unique_ptr<Picker> picker = balancer->NewPicker();      // one per worker
//   std::optional<size_t> i = picker->Pick(client);   // nullopt: none healthy
//   BackendLease lease = (*backends)->Lease(*i);      // the pair holds it
//
// Backends are named by their index in the BackendSet, which is the index in
// the list it was created from, so the caller keeps whatever else it knows
// about a backend (TLS context, server name) in a list of its own.
// Lifetime: the BackendSet outlives its Balancer and every Picker made from it
// (a Picker may outlive the Balancer).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "engine/address.h"
#include "engine/result.h"

namespace zrelay {

enum class BalancePolicy {
  kRoundRobin,  // smooth weighted round-robin, as nginx does it
  kLeastConn,   // fewest open pairs per unit of weight, across all workers
  kMaglev,      // Maglev consistent hashing on the client's IP address
};

// "round-robin", "least-conn" or "maglev"; anything else is an Error that
// quotes the value and lists the choices.
Result<BalancePolicy> ParseBalancePolicy(std::string_view name);
// The name ParseBalancePolicy accepts for `policy`.
const char* BalancePolicyName(BalancePolicy policy);

// HAProxy's range: a ratio of 256 to 1 is more than any pool needs, and it
// keeps every policy's arithmetic far from overflow.
inline constexpr uint32_t kMaxBackendWeight = 256;

struct BackendSpec {
  Address address;
  uint32_t weight = 1;  // 1..kMaxBackendWeight
};

class BackendLease;

class BackendSet {
 public:
  // Fails, naming the culprit, on an empty list, a weight out of range, or
  // an address listed twice (Maglev could not tell the two apart, and a
  // list that names a backend twice is a mistake). Every backend starts
  // healthy.
  static Result<std::unique_ptr<BackendSet>> Create(std::vector<BackendSpec> specs);
  BackendSet(const BackendSet&) = delete;
  BackendSet& operator=(const BackendSet&) = delete;

  size_t size() const { return specs_.size(); }
  const Address& address(size_t i) const { return specs_[i].address; }
  uint32_t weight(size_t i) const { return specs_[i].weight; }

  // Any thread (a health checker marks, workers read). Relaxed: a pick that
  // misses a change by a few nanoseconds is no different from one made a
  // few nanoseconds earlier.
  bool healthy(size_t i) const { return healthy_[i].load(std::memory_order_relaxed); }
  void SetHealthy(size_t i, bool healthy) { healthy_[i].store(healthy, std::memory_order_relaxed); }
  bool AnyHealthy() const;

  // Pairs open to backend i, summed over all workers (what least-conn
  // compares). Counted by leases.
  uint32_t open(size_t i) const { return open_[i].value.load(std::memory_order_relaxed); }
  // Counts a pair as open to backend i until the lease is destroyed. Take it
  // when the pair starts connecting to the backend, so the next pick, even
  // in the same loop turn, already sees it.
  BackendLease Lease(size_t i);

 private:
  friend class BackendLease;
  // One cache line per counter: every worker writes them on every connect
  // and close, and they must not bounce each other's lines (or the health
  // flags, which every pick reads).
  struct alignas(64) OpenCounter {
    std::atomic<uint32_t> value{0};
  };

  explicit BackendSet(std::vector<BackendSpec> specs);

  std::vector<BackendSpec> specs_;
  std::unique_ptr<std::atomic<bool>[]> healthy_;
  std::unique_ptr<OpenCounter[]> open_;
};

// One open pair counted against one backend; move-only, released on
// destruction. A default-constructed lease counts nothing.
class BackendLease {
 public:
  BackendLease() = default;
  BackendLease(BackendLease&& other) noexcept;
  BackendLease& operator=(BackendLease&& other) noexcept;
  ~BackendLease() { Release(); }

  bool held() const { return set_ != nullptr; }
  size_t index() const { return index_; }
  // Stops counting the pair now (the pair closed before the lease's owner
  // is destroyed).
  void Release();

 private:
  friend class BackendSet;
  BackendLease(BackendSet* set, size_t index) : set_(set), index_(index) {}

  BackendSet* set_ = nullptr;
  size_t index_ = 0;
};

// A worker's own picking state. Not thread-safe: one per worker thread.
class Picker {
 public:
  virtual ~Picker() = default;
  // The backend for a client accepted now, as an index into the BackendSet,
  // skipping unhealthy backends; nullopt when no backend is healthy (the
  // caller closes the client). `client` is its peer address; only maglev
  // looks at it.
  virtual std::optional<size_t> Pick(const Address& client) = 0;
};

// A policy over one BackendSet: the state its workers share read-only (the
// Maglev table), and a factory of per-worker Pickers.
class Balancer {
 public:
  static std::unique_ptr<Balancer> Create(BalancePolicy policy, const BackendSet& backends);
  virtual ~Balancer() = default;
  // Any thread; the Picker is then used by one thread only.
  virtual std::unique_ptr<Picker> NewPicker() const = 0;
};

}  // namespace zrelay
