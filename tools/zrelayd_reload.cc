#include "tools/zrelayd_reload.h"

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "tools/log/log.h"
#include "tools/zrelayd_listeners.h"
#include "tools/zrelayd_report.h"

namespace zrelay {
namespace {

void Refuse(const std::string& why) {
  Logf("reload refused: %s; still running the previous configuration", why.c_str());
}

std::string AddressList(const std::vector<Address>& addresses) {
  std::string out;
  for (const Address& a : addresses) out += (out.empty() ? "" : ", ") + a.ToString();
  return out;
}

// Whether `b` can take over from `a` through Engine::Reconfigure: the same
// addresses, and the same protocol (the engine refuses to turn a TCP listener
// into a UDP one; under the same name that is a listener closed and another
// one started, as for new addresses).
bool SameSockets(const ListenerConfig& a, const ListenerConfig& b) {
  return a.protocol == b.protocol && AddressList(a.listen) == AddressList(b.listen);
}

bool SameHealth(const std::optional<HealthConfig>& a, const std::optional<HealthConfig>& b) {
  if (!a || !b) return !a && !b;
  return a->interval == b->interval && a->timeout == b->timeout && a->fall == b->fall &&
         a->rise == b->rise;
}

bool SameBackends(const ListenerConfig& a, const ListenerConfig& b) {
  if (a.backends.size() != b.backends.size()) return false;
  for (size_t i = 0; i < a.backends.size(); ++i) {
    if (a.backends[i].address != b.backends[i].address ||
        a.backends[i].weight != b.backends[i].weight) {
      return false;
    }
  }
  return true;
}

// Whether Reconfigure can be skipped. A TLS listener never is: its
// certificate, key and CA files may have new contents under the same names
// (a renewed certificate is what a reload is for).
bool Unchanged(const ListenerConfig& a, const ListenerConfig& b) {
  return !a.tls && !a.backend_tls && !b.tls && !b.backend_tls && a.balance == b.balance &&
         a.connect_timeout == b.connect_timeout && a.idle_timeout == b.idle_timeout &&
         a.handshake_timeout == b.handshake_timeout && a.resolve_interval == b.resolve_interval &&
         a.max_connections == b.max_connections && a.retries == b.retries &&
         a.backlog == b.backlog && a.udp.receive_buffer == b.udp.receive_buffer &&
         a.udp.send_buffer == b.udp.send_buffer && a.udp.responses == b.udp.responses &&
         SameHealth(a.health, b.health) && SameBackends(a, b);
}

// The global keys the running engine and process were built with: a new
// value is logged and the running one kept.
void KeepRestartOnlyKeys(const FileConfig& running, FileConfig& next) {
  auto keep = [](const char* key, auto& next_value, const auto& running_value, bool differ) {
    if (!differ) return;
    Logf("reload: %s needs a restart (or an upgrade) to change; keeping the running value", key);
    next_value = running_value;
  };
  auto text = [](const std::optional<Address>& a) { return a ? a->ToString() : std::string(); };
  keep("workers", next.workers, running.workers, next.workers != running.workers);
  keep("mode", next.mode, running.mode, next.mode != running.mode);
  keep("io", next.io, running.io, next.io != running.io);
  keep("pin", next.pin, running.pin, next.pin != running.pin);
  keep("pipe_size", next.pipe_size, running.pipe_size, next.pipe_size != running.pipe_size);
  keep("pipe_pool", next.pipe_pool, running.pipe_pool, next.pipe_pool != running.pipe_pool);
  keep("buffer_size", next.buffer_size, running.buffer_size,
       next.buffer_size != running.buffer_size);
  keep("budget", next.budget, running.budget, next.budget != running.budget);
  keep("drain_grace", next.drain_grace, running.drain_grace,
       next.drain_grace != running.drain_grace);
  keep("user", next.user, running.user, next.user != running.user);
  keep("admin.listen", next.admin_listen, running.admin_listen,
       text(next.admin_listen) != text(running.admin_listen));
  keep("log.file", next.log_file, running.log_file, next.log_file != running.log_file);
  keep("log.access_log", next.access_log, running.access_log,
       next.access_log != running.access_log);
  keep("upgrade_socket", next.upgrade_socket, running.upgrade_socket,
       next.upgrade_socket != running.upgrade_socket);
}

}  // namespace

ConfigReloader::ConfigReloader(Engine& engine, std::string path, FileConfig running,
                               const EngineOptions& engine_options, std::vector<ListenerId> ids,
                               std::shared_ptr<const LogSink> access_log)
    : engine_(engine),
      path_(std::move(path)),
      running_(std::move(running)),
      engine_options_(engine_options),
      ids_(std::move(ids)),
      access_log_(std::move(access_log)) {}

Status ConfigReloader::ListenNew(const FileConfig& next, const std::vector<ListenerSetup>& setups,
                                 const std::vector<std::optional<size_t>>& stays,
                                 const std::vector<bool>& closing,
                                 std::vector<ListenerId>& next_ids) {
  // The sockets of the listeners about to close, for new ones on the same
  // addresses: what waits in their queues is accepted there. Ours close on
  // return, before those listeners do.
  std::vector<ListeningSocket> handover;
  for (size_t i = 0; i < closing.size(); ++i) {
    if (!closing[i]) continue;
    auto sockets = engine_.ListeningSockets(ids_[i]);
    if (!sockets.ok()) continue;  // the new listener binds afresh
    for (ListeningSocket& s : *sockets) handover.push_back(std::move(s));
  }
  std::vector<int> handover_fds;
  for (const ListeningSocket& s : handover) handover_fds.push_back(s.fd.get());

  std::vector<size_t> started;
  for (size_t j = 0; j < next.listeners.size(); ++j) {
    if (stays[j]) continue;
    ListenOptions options = setups[j].options;
    options.inherited_sockets = SocketsFor(options.protocol, handover_fds);
    auto id = engine_.Listen(options);
    if (!id.ok()) {
      for (size_t k : started) (void)engine_.Close(next_ids[k]);
      return Error(id.error().code(),
                   "listener " + next.listeners[j].name + ": " + id.error().message());
    }
    next_ids[j] = *id;
    started.push_back(j);
  }
  return Status::Ok();
}

void ConfigReloader::Reload() {
  Log("SIGHUP: reloading " + path_);
  auto loaded = LoadConfigFile(path_);
  if (!loaded.ok()) return Refuse(loaded.error().message());
  FileConfig next = std::move(loaded).value();
  // The engine's own timeouts stay the running ones: each listener's
  // differing ones override them, as at start.
  auto setups = SetUpListeners(next, engine_options_, path_, access_log_);
  if (!setups.ok()) return Refuse(setups.error().message());

  std::map<std::string, size_t> running_by_name;
  for (size_t i = 0; i < running_.listeners.size(); ++i) {
    running_by_name[running_.listeners[i].name] = i;
  }
  // stays[j]: the running listener that next.listeners[j] reconfigures.
  std::vector<std::optional<size_t>> stays(next.listeners.size());
  std::vector<bool> closing(running_.listeners.size(), true);
  std::vector<std::string> protocol_changes;  // logged once the new listeners run
  for (size_t j = 0; j < next.listeners.size(); ++j) {
    auto it = running_by_name.find(next.listeners[j].name);
    if (it == running_by_name.end()) continue;
    const ListenerConfig& running = running_.listeners[it->second];
    if (SameSockets(running, next.listeners[j])) {
      stays[j] = it->second;
      closing[it->second] = false;
    } else if (running.protocol != next.listeners[j].protocol) {
      protocol_changes.push_back("listener " + next.listeners[j].name + ": protocol " +
                                 ProtocolName(running.protocol) + " -> " +
                                 ProtocolName(next.listeners[j].protocol) +
                                 ": the old one closes, a new one starts");
    }
  }
  // New listeners first: one that cannot start undoes the others.
  std::vector<ListenerId> next_ids(next.listeners.size());
  if (Status started = ListenNew(next, *setups, stays, closing, next_ids); !started.ok()) {
    return Refuse(started.error().message());
  }
  for (const std::string& line : protocol_changes) Log(line);

  KeepRestartOnlyKeys(running_, next);
  const bool log_closes_changed = next.log_closes != running_.log_closes;
  size_t kept = 0;
  for (size_t j = 0; j < next.listeners.size(); ++j) {
    if (!stays[j]) continue;
    const size_t i = *stays[j];
    next_ids[j] = ids_[i];
    if (!log_closes_changed && Unchanged(running_.listeners[i], next.listeners[j])) continue;
    Status st = engine_.Reconfigure(ids_[i], (*setups)[j].options);
    if (!st.ok()) {
      Logf("listener %s: not reconfigured: %s; it runs on as before",
           next.listeners[j].name.c_str(), st.error().message().c_str());
      next.listeners[j] = running_.listeners[i];
      ++kept;
      continue;
    }
    Logf("listener %s: reconfigured; %zu backend%s, %s", next.listeners[j].name.c_str(),
         next.listeners[j].backends.size(), next.listeners[j].backends.size() == 1 ? "" : "s",
         BalancePolicyName(next.listeners[j].balance));
  }
  for (size_t i = 0; i < closing.size(); ++i) {
    if (!closing[i]) continue;
    (void)engine_.Close(ids_[i]);
    Logf("listener %s: closed on %s (open connections finish)", running_.listeners[i].name.c_str(),
         AddressList(running_.listeners[i].listen).c_str());
  }
  for (size_t j = 0; j < next.listeners.size(); ++j) {
    if (!stays[j]) PrintListener(next.listeners[j], engine_.ListenAddress(next_ids[j]));
  }

  {
    std::lock_guard<std::mutex> lock(mu_);
    running_ = std::move(next);
    ids_ = std::move(next_ids);
  }
  if (kept == 0) {
    Log("reload done");
  } else {
    Logf("reload done; %zu listener%s kept the previous configuration", kept, kept == 1 ? "" : "s");
  }
}

std::vector<NamedListener> ConfigReloader::Running() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<NamedListener> out;
  for (size_t i = 0; i < ids_.size(); ++i) out.push_back({running_.listeners[i].name, ids_[i]});
  return out;
}

}  // namespace zrelay
