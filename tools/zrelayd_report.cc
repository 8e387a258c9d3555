#include "tools/zrelayd_report.h"

#include <cstdio>

#include "tools/log/log.h"

namespace zrelay {

void PrintTotals(const EngineStats& s) {
  const WorkerStats& t = s.total;
  Logf(
      "totals: accepted %llu, pairs closed %llu, connect failures %llu, "
      "bytes client->backend %llu, backend->client %llu (spliced %llu, copied %llu), "
      "pipes in use %llu, buffers in use %llu, pipe pool exhausted %llu, "
      "accept fd exhausted %llu, accept paused at max connections %llu, "
      "backend fds exhausted %llu, backend retries %llu, no healthy backend %llu, "
      "auto splice switches %llu",
      (unsigned long long)t.accepted, (unsigned long long)t.pairs_closed,
      (unsigned long long)t.connect_failures, (unsigned long long)t.bytes_a_to_b,
      (unsigned long long)t.bytes_b_to_a, (unsigned long long)t.bytes_spliced,
      (unsigned long long)t.bytes_copied, (unsigned long long)t.pipes_in_use,
      (unsigned long long)t.buffers_in_use, (unsigned long long)t.pipe_pool_exhausted,
      (unsigned long long)t.accept_fd_exhausted,
      (unsigned long long)t.accept_paused_max_connections,
      (unsigned long long)t.backend_fd_exhausted, (unsigned long long)t.backend_retries,
      (unsigned long long)t.no_healthy_backend, (unsigned long long)t.splice_switches);
  // UDP listeners' flows, on a line of their own, only where there were any.
  const UdpStats& u = t.udp;
  if (u.flows_created == 0 && u.receive_drops == 0 && u.flow_cap_drops == 0) return;
  Logf(
      "udp totals: flows %llu, datagrams client->backend %llu, backend->client %llu, "
      "bytes client->backend %llu, backend->client %llu, drops (receive buffer %llu, "
      "flow cap %llu, send %llu), backend unreachable %llu",
      (unsigned long long)u.flows_created, (unsigned long long)u.datagrams_client_to_backend,
      (unsigned long long)u.datagrams_backend_to_client,
      (unsigned long long)u.bytes_client_to_backend, (unsigned long long)u.bytes_backend_to_client,
      (unsigned long long)u.receive_drops, (unsigned long long)u.flow_cap_drops,
      (unsigned long long)u.send_drops, (unsigned long long)u.backend_unreachable);
}

namespace {

std::string Counted(size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// "; proxy protocol accepted; 2 routes by SNI": what a listener reads before
// it picks a backend, or "" when it reads nothing. "; udp" for a UDP
// listener (which reads nothing before it picks one).
std::string PreambleSummary(const ListenerConfig& listener) {
  std::string text;
  if (listener.protocol == Protocol::kUdp) text += "; udp";
  if (listener.proxy_protocol) text += "; proxy protocol accepted";
  if (listener.route_by == RouteBy::kSni) {
    text += "; " + Counted(listener.routes.size(), "route", "routes") + " by SNI";
  }
  return text;
}

}  // namespace

std::string CheckSummary(const std::string& path, const FileConfig& config) {
  size_t backends = 0, routes = 0, proxy_listeners = 0, udp_listeners = 0;
  for (const ListenerConfig& listener : config.listeners) {
    backends += listener.backends.size();
    for (const RouteConfig& route : listener.routes) backends += route.backends.size();
    routes += listener.routes.size();
    if (listener.proxy_protocol) ++proxy_listeners;
    if (listener.protocol == Protocol::kUdp) ++udp_listeners;
  }
  std::string summary = path + ": OK, " +
                        Counted(config.listeners.size(), "listener", "listeners") + ", " +
                        Counted(backends, "backend", "backends");
  if (routes > 0) summary += ", " + Counted(routes, "route", "routes") + " by SNI";
  if (proxy_listeners > 0) {
    summary += ", proxy protocol accepted on " + Counted(proxy_listeners, "listener", "listeners");
  }
  if (udp_listeners > 0) summary += ", UDP on " + Counted(udp_listeners, "listener", "listeners");
  return summary;
}

void PrintFdLimit(const Result<FdLimit>& fd_limit) {
  if (fd_limit.ok() && fd_limit->before == fd_limit->after) {
    Logf("fd limit %llu (the hard limit already)",
         static_cast<unsigned long long>(fd_limit->after));
  } else if (fd_limit.ok()) {
    Logf("fd limit raised from %llu to %llu", static_cast<unsigned long long>(fd_limit->before),
         static_cast<unsigned long long>(fd_limit->after));
  } else {
    Logf("warning: %s", fd_limit.error().message().c_str());
  }
}

// "listener web: listening on 127.0.0.1:8080, [::1]:8080; 3 backends, least-conn"
void PrintListener(const ListenerConfig& listener, const Result<Address>& bound) {
  std::string addresses = bound.ok() ? bound->ToString() : listener.listen.front().ToString();
  for (size_t i = 1; i < listener.listen.size(); ++i) {
    addresses += ", " + listener.listen[i].ToString();
  }
  Logf("listener %s: listening on %s; %zu backend%s, %s%s", listener.name.c_str(),
       addresses.c_str(), listener.backends.size(), listener.backends.size() == 1 ? "" : "s",
       BalancePolicyName(listener.balance), PreambleSummary(listener).c_str());
}

}  // namespace zrelay
