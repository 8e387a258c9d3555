// Live counters of a running engine, read from any thread while the workers
// run: Engine::Metrics() never stops a worker or waits for one. What it
// returns is plain data, for an exporter (zrelayd's /metrics) to print.
//
// Each worker writes its own counters (single writer, relaxed atomics) and
// the reader sums them, so a snapshot is not one instant across workers: a
// pair that just closed may already count as closed and not yet in the
// bytes of its last turn. Counters only grow, for the life of a listener
// (a reload keeps them: they belong to the listener's name).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace zrelay {

// Number of CloseCause values; closed_total is indexed by the cause.
inline constexpr size_t kCloseCauseCount = 7;

// A latency histogram, Prometheus-style: counts[i] is the number of
// observations <= bounds_seconds[i] (not cumulative here: the exporter sums
// them), and counts.back() those above the last bound (+Inf).
struct HistogramSnapshot {
  std::vector<double> bounds_seconds;  // ascending
  std::vector<uint64_t> counts;        // bounds_seconds.size() + 1
  double sum_seconds = 0;
  uint64_t count = 0;
};

// The bucket bounds of connect-latency histograms, in seconds.
inline constexpr std::array<double, 12> kConnectSecondsBounds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0};

// One endpoint of a listener's pools (a literal backend, or one address of
// a host backend): its own backends' pool, and one pool per route.
struct BackendMetrics {
  std::string address;  // "10.0.0.5:9000", "[::1]:9000", "unix:/run/app.sock"
  std::string host;     // the host name it was resolved from; empty for a literal
  // The route (RouteOptions::name, or its number from 1 when unnamed)
  // whose pool it is in; empty for the listener's own backends. An address in several pools is
  // listed once for each, with counters of its own in each.
  std::string route{};
  // Health: up when neither an active check marked it down nor passive
  // health ejected it.
  bool up = true;
  bool down = false;                    // an active health check says down
  bool ejected = false;                 // passive health took it out for a while
  uint64_t connections_open = 0;        // pairs (UDP: flows) connected or connecting to it now
  uint64_t connects_total = 0;          // connects that succeeded (UDP: flows answered)
  uint64_t connect_failures_total = 0;  // connects that failed (refused, unreachable, timed out)
                                        // (not those this process ran out of fds for)
  HistogramSnapshot connect_seconds;    // successful connects, from start to connected
};

struct ListenerMetrics {
  std::string name;                    // ListenOptions::name; may be empty
  std::string protocol = "tcp";        // "tcp" or "udp" (ListenOptions::protocol)
  std::vector<std::string> addresses;  // bound addresses, as Address::ToString()
  uint64_t max_connections = 0;        // per address
  uint64_t accepted_total = 0;
  // Pairs of this listener open now (reading the preamble, connecting,
  // handshaking or relaying).
  uint64_t open = 0;
  std::array<uint64_t, kCloseCauseCount> closed_total{};  // by CloseCause
  uint64_t bytes_client_to_backend_total = 0;
  uint64_t bytes_backend_to_client_total = 0;
  uint64_t bytes_spliced_total = 0;  // of the above, moved through pipes
  uint64_t bytes_copied_total = 0;   // of the above, moved through ring buffers
  // TLS handshakes finished and failed (timeout, error, reset), with
  // clients (the listener terminates TLS) and with backends (originated).
  // One cut short by Drain's deadline counts as neither.
  uint64_t client_tls_handshakes_total = 0;
  uint64_t client_tls_handshake_failures_total = 0;
  uint64_t backend_tls_handshakes_total = 0;
  uint64_t backend_tls_handshake_failures_total = 0;
  uint64_t connect_failures_total = 0;  // every failed backend connect try (out of fds included)
  uint64_t backend_retries_total = 0;
  uint64_t no_healthy_backend_total = 0;
  uint64_t accept_fd_exhausted_total = 0;            // accept paused: out of fds
  uint64_t accept_paused_max_connections_total = 0;  // accept paused: max_connections open
  uint64_t backend_fd_exhausted_total = 0;
  // UDP listeners: accepted_total counts flows created, open the flows open,
  // closed_total their ends, the byte counters their payload; these count
  // the datagrams and the drops (relay.h UdpStats says what each means).
  // Always 0 for a TCP listener.
  uint64_t datagrams_client_to_backend_total = 0;
  uint64_t datagrams_backend_to_client_total = 0;
  uint64_t udp_receive_drops_total = 0;
  uint64_t udp_flow_cap_drops_total = 0;
  uint64_t udp_backend_unreachable_total = 0;
  uint64_t udp_send_drops_total = 0;
  // The current endpoints of its pool, then those of each route's pool
  // (in the order of ListenOptions::routes).
  std::vector<BackendMetrics> backends;
};

// Worker-wide gauges and counters (Pipe() pairs included).
struct WorkerMetrics {
  uint64_t pairs_open = 0;
  uint64_t pipes_in_use = 0;
  uint64_t pipes_pooled = 0;
  uint64_t pipe_pool_exhausted_total = 0;
  uint64_t buffers_in_use = 0;
  uint64_t buffers_pooled = 0;
  uint64_t splice_switches_total = 0;
};

struct MetricsSnapshot {
  std::vector<ListenerMetrics> listeners;  // in the order they were added
  std::vector<WorkerMetrics> workers;      // index = worker
  bool draining = false;                   // a Drain() has started
};

}  // namespace zrelay
