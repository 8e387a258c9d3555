#include "relay/listener_counters.h"

namespace zrelay {

void EndpointCounters::Fill(BackendMetrics& out) const {
  out.connect_seconds = connect_seconds_.Snapshot();
  out.connects_total = out.connect_seconds.count;
  out.connect_failures_total = connect_failures_.load(std::memory_order_relaxed);
}

ListenerCounters::ListenerCounters(size_t workers)
    : worker_count_(workers), workers_(new ListenerWorkerCounters[workers]) {}

EndpointCounters& ListenerCounters::Endpoint(const std::string& route, const Address& address) {
  std::lock_guard<std::mutex> lock(endpoints_mu_);
  // A route's name has no space in the key's other part: addresses have none.
  const std::string key = route.empty() ? address.ToString() : route + " " + address.ToString();
  std::unique_ptr<EndpointCounters>& counters = endpoints_[key];
  if (!counters) counters = std::make_unique<EndpointCounters>();
  return *counters;
}

void ListenerCounters::Fill(ListenerMetrics& out) const {
  uint64_t closed = 0;
  for (size_t w = 0; w < worker_count_; ++w) {
    const ListenerWorkerCounters& c = workers_[w];
    // Closes first: a pair is counted accepted before it can close, so
    // reading the accepts after them keeps `open` from going below zero
    // (and the clamp below covers what relaxed loads do not promise).
    for (size_t cause = 0; cause < kCloseCauseCount; ++cause) {
      const uint64_t n = c.closed[cause].Get();
      out.closed_total[cause] += n;
      closed += n;
    }
    out.accepted_total += c.accepted.Get();
    out.bytes_client_to_backend_total += c.bytes_client_to_backend.Get();
    out.bytes_backend_to_client_total += c.bytes_backend_to_client.Get();
    out.bytes_spliced_total += c.bytes_spliced.Get();
    out.bytes_copied_total += c.bytes_copied.Get();
    out.client_tls_handshakes_total += c.client_tls_handshakes.Get();
    out.client_tls_handshake_failures_total += c.client_tls_handshake_failures.Get();
    out.backend_tls_handshakes_total += c.backend_tls_handshakes.Get();
    out.backend_tls_handshake_failures_total += c.backend_tls_handshake_failures.Get();
    out.connect_failures_total += c.connect_failures.Get();
    out.backend_retries_total += c.backend_retries.Get();
    out.no_healthy_backend_total += c.no_healthy_backend.Get();
    out.backend_fd_exhausted_total += c.backend_fd_exhausted.Get();
    out.datagrams_client_to_backend_total += c.datagrams_client_to_backend.Get();
    out.datagrams_backend_to_client_total += c.datagrams_backend_to_client.Get();
    out.udp_receive_drops_total += c.udp_receive_drops.Get();
    out.udp_flow_cap_drops_total += c.udp_flow_cap_drops.Get();
    out.udp_backend_unreachable_total += c.udp_backend_unreachable.Get();
    out.udp_send_drops_total += c.udp_send_drops.Get();
  }
  out.open = out.accepted_total > closed ? out.accepted_total - closed : 0;
}

}  // namespace zrelay
