// ListenerCounters: what one listener's pairs did, for Engine::Metrics.
//
// Each worker writes its own slot (single writer, relaxed atomics, no
// lock): a pair reaches its worker's slot through its BackendRoute and
// counts as it goes, bytes included, so a scrape during a long transfer
// sees its bytes so far. Endpoint counters are shared by the workers
// (atomic adds, once per connect) and kept by address, so they outlive a
// pool generation: a host's re-resolution that keeps an address keeps its
// counts.
//
// The listener holds it through a shared_ptr so that a listener that
// replaces it (a reload) can carry on with the same counters.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine/address.h"
#include "engine/clock.h"
#include "relay/connect_histogram.h"
#include "relay/metrics.h"
#include "relay/relaxed_counter.h"
#include "relay/relay.h"

namespace zrelay {

static_assert(static_cast<size_t>(CloseCause::kTruncated) + 1 == kCloseCauseCount,
              "closed_total has one slot per CloseCause");

// One worker's counts for one listener. Its own cache lines: the worker
// writes them on every pump run.
struct alignas(64) ListenerWorkerCounters {
  RelaxedCounter accepted;
  std::array<RelaxedCounter, kCloseCauseCount> closed;  // by CloseCause
  RelaxedCounter bytes_client_to_backend;
  RelaxedCounter bytes_backend_to_client;
  RelaxedCounter bytes_spliced;
  RelaxedCounter bytes_copied;
  RelaxedCounter client_tls_handshakes;
  RelaxedCounter client_tls_handshake_failures;
  RelaxedCounter backend_tls_handshakes;
  RelaxedCounter backend_tls_handshake_failures;
  RelaxedCounter connect_failures;  // every failed try, out of fds included
  RelaxedCounter backend_retries;
  RelaxedCounter no_healthy_backend;
  RelaxedCounter backend_fd_exhausted;
  // UDP listeners (accepted counts flows, the byte counters their payload).
  RelaxedCounter datagrams_client_to_backend;
  RelaxedCounter datagrams_backend_to_client;
  RelaxedCounter udp_receive_drops;
  RelaxedCounter udp_flow_cap_drops;
  RelaxedCounter udp_backend_unreachable;
  RelaxedCounter udp_send_drops;
};

// One backend endpoint's connects, from every worker.
class alignas(64) EndpointCounters {
 public:
  void Connected(Duration latency) { connect_seconds_.Observe(latency); }
  void ConnectFailed() { connect_failures_.fetch_add(1, std::memory_order_relaxed); }
  // Sets connects_total, connect_failures_total and connect_seconds.
  void Fill(BackendMetrics& out) const;

 private:
  ConnectHistogram connect_seconds_;  // its count is the connects that succeeded
  std::atomic<uint64_t> connect_failures_{0};
};

class ListenerCounters {
 public:
  explicit ListenerCounters(size_t workers);
  ListenerCounters(const ListenerCounters&) = delete;
  ListenerCounters& operator=(const ListenerCounters&) = delete;

  // Worker `i`'s slot: written by that worker only.
  ListenerWorkerCounters& worker(size_t i) { return workers_[i]; }

  // The counters of the endpoint at `address` in the pool of `route` (a
  // RouteOptions::name; empty: the listener's own backends), made on its
  // first call. Called when a pool generation is made (off the workers);
  // the object stays put for the life of this ListenerCounters.
  EndpointCounters& Endpoint(const std::string& route, const Address& address);

  // Sums the workers' slots into `out` (its counters still zero):
  // accepted_total, open, closed_total, the byte, TLS handshake and backend
  // connect counters. Any thread.
  void Fill(ListenerMetrics& out) const;

 private:
  const size_t worker_count_;
  std::unique_ptr<ListenerWorkerCounters[]> workers_;
  std::mutex endpoints_mu_;
  // By "address" or "route address".
  std::map<std::string, std::unique_ptr<EndpointCounters>> endpoints_;
};

}  // namespace zrelay
