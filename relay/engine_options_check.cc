#include "relay/engine_options_check.h"

#include <algorithm>
#include <string>
#include <vector>

#include "engine/fd_limit.h"
#include "relay/sni_router.h"

namespace zrelay {
namespace {

// Fds kept spare by a derived max_connections, for what opens after Listen().
constexpr size_t kSpareFds = 64;

// A backend list's own checks; `where` names a route's ("route api: ").
Status ValidateBackends(const std::vector<BackendOptions>& backends, const std::string& where) {
  for (size_t i = 0; i < backends.size(); ++i) {
    const BackendOptions& b = backends[i];
    if (b.host.empty()) {
      if (b.address.family() == AF_UNSPEC) {
        return Error::Invalid(where + "backend " + std::to_string(i + 1) +
                              " has neither an address nor a host");
      }
      continue;
    }
    if (b.port < 1 || b.port > 65535) {
      return Error::Invalid(where + "backend " + b.host + ": port " + std::to_string(b.port) +
                            " is out of range (1..65535)");
    }
  }
  return Status::Ok();
}

// Routing and the client preamble (PROXY header, ClientHello).
Status ValidateRouting(const ListenOptions& o) {
  if (!o.proxy_protocol_from.empty() && !o.proxy_protocol) {
    return Error::Invalid("proxy_protocol_from is set but proxy_protocol is off");
  }
  if (o.preamble_timeout <= Duration::zero()) return Error::Invalid("preamble_timeout must be > 0");
  if (o.route_by == RouteBy::kNone) {
    if (!o.routes.empty()) return Error::Invalid("routes are set but route_by is none");
    return Status::Ok();
  }
  if (o.tls != nullptr) {
    return Error::Invalid(
        "route_by sni reads the client's ClientHello as it is: not with a TLS-terminating "
        "listener (tls)");
  }
  for (size_t i = 0; i < o.routes.size(); ++i) {
    const RouteOptions& r = o.routes[i];
    const std::string where = "route " + (r.name.empty() ? std::to_string(i + 1) : r.name) + ": ";
    if (r.server_names.empty()) return Error::Invalid(where + "no server names");
    for (const std::string& name : r.server_names) {
      const std::string error = ServerNamePatternError(name);
      if (!error.empty()) return Error::Invalid(where + error);
    }
    if (r.backends.empty()) return Error::Invalid(where + "no backends");
    for (size_t j = 0; j < i; ++j) {
      if (!r.name.empty() && o.routes[j].name == r.name) {
        return Error::Invalid(where + "the name is used by another route too");
      }
    }
    Status backends = ValidateBackends(r.backends, where);
    if (!backends.ok()) return backends;
  }
  return Status::Ok();
}

// A listener either connects backends itself or hands each client to
// on_accept, never both.
Status ValidateClientHandling(const ListenOptions& o) {
  if (!o.on_accept) {
    if (o.backends.empty()) return Error::Invalid("no backend given");
    return Status::Ok();
  }
  if (!o.backends.empty()) {
    return Error::Invalid(
        "on_accept hands every client to the embedder, which picks its backend: backends must be "
        "empty");
  }
  if (o.proxy_protocol) return Error::Invalid("on_accept is not for a proxy_protocol listener");
  if (o.route_by != RouteBy::kNone || !o.routes.empty()) {
    return Error::Invalid("on_accept is not for a listener with route_by or routes");
  }
  return Status::Ok();
}

}  // namespace

Status ValidateOptions(const EngineOptions& o) {
  if (o.workers < 0) return Error::Invalid("workers must be >= 0 (0: one per CPU)");
  if (o.pipe_size < 4096) return Error::Invalid("pipe_size must be at least 4096 bytes");
  if (o.buffer_size < 1024) return Error::Invalid("buffer_size must be at least 1024 bytes");
  if (o.budget_per_event == 0) return Error::Invalid("budget_per_event must be > 0");
  if (o.buffers_cap == 0) return Error::Invalid("buffers_cap must be > 0");
  return Status::Ok();
}

// ListenOptions::max_connections = 0, worked out from RLIMIT_NOFILE
// (relay.h gives the formula and why).
// A TCP client holds two sockets (client and backend), and pipes may hold
// more; a UDP flow holds one (its socket to the backend).
Result<size_t> DerivedMaxConnections(const EngineOptions& engine, size_t workers,
                                     Protocol protocol) {
  Result<FdUsage> usage = CurrentFdUsage();
  if (!usage) {
    return Error(usage.error().code(),
                 "max_connections from RLIMIT_NOFILE: " + usage.error().message());
  }
  const size_t taken = usage->open + kSpareFds;
  size_t left = usage->soft_limit > taken ? usage->soft_limit - taken : 0;
  if (protocol == Protocol::kUdp) {
    if (left == 0) {
      return Error::Invalid("max_connections from RLIMIT_NOFILE: a soft limit of " +
                            std::to_string(usage->soft_limit) + " with " +
                            std::to_string(usage->open) +
                            " fds open leaves no room for a flow; raise it (ulimit -n) or set "
                            "max_connections");
    }
    return left;
  }
  if (engine.mode != RelayMode::kCopy) {
    left -= std::min(2 * engine.pipe_pool_cap * workers, left / 2);
  }
  if (left < 2) {
    return Error::Invalid("max_connections from RLIMIT_NOFILE: a soft limit of " +
                          std::to_string(usage->soft_limit) + " with " +
                          std::to_string(usage->open) +
                          " fds open leaves no room for a pair; raise it (ulimit -n) or set "
                          "max_connections");
  }
  return left / 2;  // two sockets per pair
}

Status ValidateListenOptions(const ListenOptions& o) {
  Status handling = ValidateClientHandling(o);
  if (!handling.ok()) return handling;
  Status backends = ValidateBackends(o.backends, "");
  if (!backends.ok()) return backends;
  Status routing = ValidateRouting(o);
  if (!routing.ok()) return routing;
  if (o.retries < 0) return Error::Invalid("retries must be >= 0");
  if (o.eject_after < 0) return Error::Invalid("eject_after must be >= 0 (0: no ejection)");
  if (o.eject_after > 0 && o.eject_for <= Duration::zero()) {
    return Error::Invalid("eject_for must be > 0");
  }
  if (o.resolve_interval <= Duration::zero()) return Error::Invalid("resolve_interval must be > 0");
  if (o.connect_timeout <= Duration::zero()) return Error::Invalid("connect_timeout must be > 0");
  if (o.idle_timeout && *o.idle_timeout < Duration::zero()) {
    return Error::Invalid("idle_timeout must be >= 0 (0: none)");
  }
  if (o.handshake_timeout && *o.handshake_timeout <= Duration::zero()) {
    return Error::Invalid("handshake_timeout must be > 0");
  }
  if (o.health) {
    const HealthCheckOptions& h = *o.health;
    if (h.interval <= Duration::zero()) return Error::Invalid("health check interval must be > 0");
    if (h.timeout <= Duration::zero() || h.timeout >= h.interval) {
      return Error::Invalid("health check timeout must be > 0 and shorter than its interval");
    }
    if (h.fall < 1 || h.rise < 1) return Error::Invalid("health check fall and rise must be >= 1");
  }
  return Status::Ok();
}

}  // namespace zrelay
