#include "tools/zrelayd_listeners.h"

#include <sys/socket.h>

#include <optional>
#include <utility>

#include "tools/cli/values.h"
#include "tools/config/udp_listener.h"
#include "tools/log/access_log.h"
#include "tools/log/log.h"

namespace zrelay {
namespace {

// A TLS context that would not build: the message names the file, so the
// key that names that file says where it is written. The earliest file in
// the message wins: "key 'k' does not match certificate 'c'" is about the key.
Error TlsError(std::string_view file, size_t index, const ListenerConfig& listener,
               const std::string& side, const Error& error) {
  const std::string& message = error.message();
  if (file.empty()) return Error(error.code(), side + ": " + message);
  const ListenerConfig::FileKey* at = nullptr;
  size_t at_offset = std::string::npos;
  for (const ListenerConfig::FileKey& key : listener.tls_files) {
    size_t offset = message.find("'" + key.file + "'");
    if (offset < at_offset) {
      at = &key;
      at_offset = offset;
    }
  }
  std::string where = std::string(file);
  if (at == nullptr) {
    where += ": listener[" + std::to_string(index) + "]: " + side;
  } else {
    if (at->line > 0) where += ":" + std::to_string(at->line);
    where += ": " + at->path;
  }
  return Error(error.code(), where + ": " + message);
}

// With backend TLS and no backend_sni, a host name is the engine's to send
// and verify (BackendOptions::sni empty); a literal's IP is verified against
// the certificate's IP SANs (and never sent as SNI).
std::string BackendName(const ListenerConfig& listener, const BackendConfig& backend) {
  if (!listener.backend_tls) return "";
  if (!listener.backend_tls->sni.empty()) return listener.backend_tls->sni;
  if (!backend.literal || backend.literal->is_unix()) return "";
  return HostOf(backend.literal->ToString());
}

BackendOptions BackendFor(const ListenerConfig& listener, const BackendConfig& backend) {
  BackendOptions options;
  if (backend.literal) {
    options.address = *backend.literal;
  } else {
    options.host = backend.host;
    options.port = backend.port;
  }
  options.weight = backend.weight;
  options.sni = BackendName(listener, backend);
  options.send_proxy = backend.send_proxy;
  return options;
}

std::vector<BackendOptions> BackendsFor(const ListenerConfig& listener,
                                        const std::vector<BackendConfig>& backends) {
  std::vector<BackendOptions> options;
  options.reserve(backends.size());
  for (const BackendConfig& backend : backends) options.push_back(BackendFor(listener, backend));
  return options;
}

// A UDP listener's flows end only when idle. Unset in the file, they are
// left to the engine's default (30 s) unless the engine's own idle timeout,
// a TCP listener's, is set: flows do not inherit that one.
std::optional<Duration> UdpIdleTimeout(const ListenerConfig& listener,
                                       const EngineOptions& engine) {
  if (listener.idle_timeout != Duration::zero()) return listener.idle_timeout;
  if (engine.idle_timeout == Duration::zero()) return std::nullopt;
  return kDefaultUdpIdleTimeout;
}

ListenOptions OptionsFor(const ListenerConfig& listener, const EngineOptions& engine,
                         const std::shared_ptr<const LogSink>& access_log) {
  ListenOptions options;
  options.name = listener.name;
  options.protocol = listener.protocol;
  options.udp = listener.udp;
  options.address = listener.listen.front();
  options.extra_addresses.assign(listener.listen.begin() + 1, listener.listen.end());
  options.backends = BackendsFor(listener, listener.backends);
  options.proxy_protocol = listener.proxy_protocol;
  options.proxy_protocol_from = listener.proxy_protocol_from;
  options.preamble_timeout = listener.preamble_timeout;
  options.route_by = listener.route_by;
  for (const RouteConfig& route : listener.routes) {
    options.routes.push_back(
        {route.name, route.sni, BackendsFor(listener, route.backends), route.balance});
  }
  options.balance = listener.balance;
  options.retries = listener.retries;
  options.connect_timeout = listener.connect_timeout;
  options.backlog = listener.backlog;
  options.max_connections = static_cast<size_t>(listener.max_connections);
  options.resolve_interval = listener.resolve_interval;
  if (listener.protocol == Protocol::kUdp) {
    // No handshakes on flows; connect_timeout and backlog are the defaults
    // (the file may not set them), which flows do not use.
    options.idle_timeout = UdpIdleTimeout(listener, engine);
  } else {
    if (listener.idle_timeout != engine.idle_timeout) options.idle_timeout = listener.idle_timeout;
    if (listener.handshake_timeout != engine.handshake_timeout) {
      options.handshake_timeout = listener.handshake_timeout;
    }
  }
  if (listener.health) {
    const HealthConfig& health = *listener.health;
    options.health = HealthCheckOptions{health.interval, health.timeout, health.fall, health.rise};
  }
  options.on_event = [](const std::string& line) { Logf("%s", line.c_str()); };
  if (access_log) options.on_close = AccessLogger(access_log, listener.name);
  return options;
}

}  // namespace

FileConfig FileConfigFromFlags(const ZrelaydConfig& flags) {
  FileConfig config;
  const EngineOptions& engine = flags.engine;
  config.workers = engine.workers;
  config.mode = engine.mode;
  config.io = engine.io;
  config.pin = engine.pin_cpus;
  config.pipe_size = engine.pipe_size;
  config.pipe_pool = engine.pipe_pool_cap;
  config.buffer_size = engine.buffer_size;
  config.budget = engine.budget_per_event;
  config.drain_grace = flags.drain_grace;
  config.user = flags.user;
  config.log_closes = flags.log_closes;
  if (flags.log_closes) config.access_log = "stderr";
  ListenerConfig& listener = config.listeners.emplace_back();
  listener.listen = {flags.listen};
  listener.connect_timeout = flags.connect_timeout;
  listener.idle_timeout = engine.idle_timeout;
  listener.handshake_timeout = engine.handshake_timeout;
  listener.max_connections = flags.max_connections;
  if (flags.tls) listener.tls = flags.tls_server;
  if (flags.backend_tls) listener.backend_tls = flags.tls_backend;
  BackendConfig& backend = listener.backends.emplace_back();
  backend.address = flags.backend.ToString();
  backend.literal = flags.backend;
  return config;
}

EngineOptions EngineOptionsFor(const FileConfig& config) {
  EngineOptions engine;
  engine.workers = config.workers;
  engine.pin_cpus = config.pin;
  engine.mode = config.mode;
  engine.io = config.io;
  engine.pipe_size = static_cast<size_t>(config.pipe_size);
  engine.pipe_pool_cap = static_cast<size_t>(config.pipe_pool);
  engine.buffer_size = static_cast<size_t>(config.buffer_size);
  engine.budget_per_event = static_cast<size_t>(config.budget);
  // A UDP listener's timeouts are its flows' own, never the engine's.
  for (const ListenerConfig& listener : config.listeners) {
    if (listener.protocol != Protocol::kTcp) continue;
    engine.idle_timeout = listener.idle_timeout;
    engine.handshake_timeout = listener.handshake_timeout;
    break;
  }
  return engine;
}

std::vector<int> SocketsFor(Protocol protocol, const std::vector<int>& fds) {
  const int wanted = protocol == Protocol::kUdp ? SOCK_DGRAM : SOCK_STREAM;
  std::vector<int> kept;
  for (int fd : fds) {
    int type = 0;
    socklen_t length = sizeof(type);
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 && type == wanted) {
      kept.push_back(fd);
    }
  }
  return kept;
}

Result<std::vector<ListenerSetup>> SetUpListeners(const FileConfig& config,
                                                  const EngineOptions& engine,
                                                  std::string_view file,
                                                  std::shared_ptr<const LogSink> access_log) {
  std::vector<ListenerSetup> setups;
  setups.reserve(config.listeners.size());
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const ListenerConfig& listener = config.listeners[i];
    ListenerSetup& setup = setups.emplace_back();
    if (listener.tls) {
      auto ctx = BuildServerContext(*listener.tls);
      if (!ctx.ok()) return TlsError(file, i, listener, "TLS", ctx.error());
      setup.client_tls = std::move(ctx.value());
    }
    if (listener.backend_tls) {
      auto ctx = BuildClientContext(*listener.backend_tls);
      if (!ctx.ok()) return TlsError(file, i, listener, "backend TLS", ctx.error());
      setup.backend_tls = std::move(ctx.value());
    }
    setup.options = OptionsFor(listener, engine, access_log);
    setup.options.tls = setup.client_tls.get();
    // Routes' backends are the listener's too: the same backend TLS.
    for (BackendOptions& backend : setup.options.backends) backend.tls = setup.backend_tls.get();
    for (RouteOptions& route : setup.options.routes) {
      for (BackendOptions& backend : route.backends) backend.tls = setup.backend_tls.get();
    }
  }
  return setups;
}

}  // namespace zrelay
