// zrelayd: a TCP relay daemon and load balancer, built on zrelay.
//
//   zrelayd --listen ADDR --backend ADDR [flags]   one listener, one backend
//   zrelayd --config FILE                          every listener of a TOML file
//   zrelayd --check FILE                           check the file and its certificates
//   zrelayd --config FILE --upgrade                take over from the running zrelayd
//
// Runs in the foreground. SIGTERM or SIGINT: stop accepting, let open pairs
// finish for the drain grace, close the rest, print the totals, exit 0; a
// second SIGTERM or SIGINT closes the remaining pairs at once. SIGHUP
// reloads the --config file (tools/zrelayd_reload.h); on the command line
// it is logged and ignored. SIGUSR1 reopens the [log] files (logrotate).
// SIGUSR2 starts the binary at this one's path with --upgrade, which takes
// over (tools/zrelayd_upgrade.h). Usage errors and files --check refuses exit 2; a setup failure (a
// log file, bind, certificates named by flags, --user) exits 1. Under systemd
// (tools/zrelayd.service) it reports READY=1 once every listener is bound,
// RELOADING=1 then READY=1 around a reload, STOPPING=1 when the drain
// starts, and, handing over to a successor, MAINPID= of that process.
#include <signal.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "relay/relay.h"
#include "tools/admin/zrelayd_admin.h"
#include "tools/config/config.h"
#include "tools/log/log.h"
#include "tools/log/log_sink.h"
#include "tools/upgrade/upgrade_path.h"
#include "tools/zrelayd_flags.h"
#include "tools/zrelayd_listeners.h"
#include "tools/zrelayd_notify.h"
#include "tools/zrelayd_process.h"
#include "tools/zrelayd_reload.h"
#include "tools/zrelayd_report.h"
#include "tools/zrelayd_serve.h"
#include "tools/zrelayd_upgrade.h"

namespace zrelay {
namespace {

// [log]: zrelayd's own lines to the file, if one is named, and the access
// log's sink (null: none). Each file is opened here, before anything binds,
// so a path zrelayd cannot write to stops the start instead of losing lines.
Result<std::shared_ptr<LogSink>> OpenLogs(const FileConfig& config) {
  if (!config.log_file.empty()) {
    Logf("logging to %s", config.log_file.c_str());  // the last line stderr gets
    Status opened = LogToFile(config.log_file);
    if (!opened.ok()) return opened.error();
  }
  if (config.access_log.empty()) return std::shared_ptr<LogSink>();
  if (config.access_log == "stderr") return std::shared_ptr<LogSink>(LogSink::Stderr());
  auto file = LogSink::OpenFile(config.access_log, "access log");
  if (!file.ok()) return file.error();
  return std::shared_ptr<LogSink>(std::move(file.value()));
}

// SIGUSR1, after logrotate moved the files away: each file is opened anew.
// One that will not reopen (its directory gone, no permission) keeps the
// file it had, and the error goes where zrelayd's own lines go.
void ReopenLogs(const FileConfig& config, LogSink* access_log) {
  const bool access_file = access_log != nullptr && !access_log->is_stderr();
  if (config.log_file.empty() && !access_file) {
    Logf("SIGUSR1: no log file to reopen");
    return;
  }
  bool all = true;
  for (const Status& reopened :
       {ReopenLogFile(), access_file ? access_log->Reopen() : Status::Ok()}) {
    if (reopened.ok()) continue;
    all = false;
    Logf("SIGUSR1: %s; still writing to the file as it was", reopened.error().message().c_str());
  }
  if (all) Logf("SIGUSR1: log files reopened");
}

// --check: everything a start would read and build, nothing it would bind.
int Check(const std::string& path) {
  auto config = LoadConfigFile(path);
  if (!config.ok()) {
    Logf("%s", config.error().message().c_str());
    return 2;
  }
  auto listeners = SetUpListeners(config.value(), EngineOptionsFor(config.value()), path);
  if (!listeners.ok()) {
    Logf("%s", listeners.error().message().c_str());
    return 2;
  }
  std::printf("%s\n", CheckSummary(path, config.value()).c_str());
  return 0;
}

// The path of this binary, read at start: once a new version is installed
// there, SIGUSR2 starts that one.
std::string ExecutablePath() {
  char path[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  return n > 0 ? std::string(path, static_cast<size_t>(n)) : std::string("/proc/self/exe");
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = ParseZrelaydFlags(args);
  if (!parsed.ok()) {
    Logf("%s\n(run 'zrelayd --help' for usage)", parsed.error().message().c_str());
    return 2;
  }
  const ZrelaydConfig& flags = parsed.value();
  if (flags.help) {
    std::fputs(ZrelaydUsage().c_str(), stdout);
    return 0;
  }
  if (!flags.check_file.empty()) return Check(flags.check_file);
  const bool from_file = !flags.config_file.empty();
  FileConfig config;
  if (from_file) {
    auto loaded = LoadConfigFile(flags.config_file);
    if (!loaded.ok()) {
      Logf("%s", loaded.error().message().c_str());
      return 2;
    }
    config = std::move(loaded.value());
  } else {
    config = FileConfigFromFlags(flags);
  }
  if (flags.upgrade && config.upgrade_socket.empty()) {
    Logf("--upgrade: %s sets no upgrade_socket", flags.config_file.c_str());
    return 2;
  }

  auto access_log = OpenLogs(config);
  if (!access_log.ok()) {
    Logf("%s", access_log.error().message().c_str());
    return 1;
  }

  // Block the handled signals before any thread starts, so every worker
  // inherits the mask and only StopSignals' signalfd sees them.
  // A daemon owns its process: ignoring SIGPIPE here is ours to decide (the
  // library only blocks it in its own threads).
  sigset_t handled = HandledSignals();
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);
  signal(SIGPIPE, SIG_IGN);
  auto stop_signals = StopSignals::Open();
  if (!stop_signals.ok()) {
    Logf("%s", stop_signals.error().message().c_str());
    return 1;
  }
  PrintFdLimit(RaiseFdLimit());

  // Certificates and keys are checked before any thread starts. Every SSL
  // holds its own reference to its context, so pairs never outlive these.
  const EngineOptions engine_options = EngineOptionsFor(config);
  auto listeners = SetUpListeners(config, engine_options, flags.config_file, access_log.value());
  if (!listeners.ok()) {
    Logf("%s", listeners.error().message().c_str());
    return from_file ? 2 : 1;  // as --check says of the same file
  }
  // --upgrade: the running zrelayd's listening sockets, adopted by Listen()
  // below. Any failure up to Finish() leaves that process serving unchanged.
  std::optional<Takeover> takeover;
  if (flags.upgrade) {
    auto begun = Takeover::Begin(config.upgrade_socket, listeners.value());
    if (!begun.ok()) {
      Logf("%s", begun.error().message().c_str());
      return 1;
    }
    takeover.emplace(std::move(begun.value()));
  } else if (!config.upgrade_socket.empty()) {
    // Before binding anything: a live zrelayd there means this start would
    // listen beside it (SO_REUSEPORT) instead of taking over.
    Status free = upgrade::ReplaceStalePath(config.upgrade_socket);
    if (!free.ok()) {
      Logf("%s", free.error().message().c_str());
      return 1;
    }
  }
  auto engine = Engine::Start(engine_options);
  if (!engine.ok()) {
    Logf("%s", engine.error().message().c_str());
    return 1;
  }
  std::vector<ListenerId> ids;
  for (size_t i = 0; i < listeners->size(); ++i) {
    auto id = engine.value()->Listen((*listeners)[i].options);
    if (!id.ok()) {
      std::string where = from_file ? "listener " + config.listeners[i].name + ": " : "";
      Logf("%s%s", where.c_str(), id.error().message().c_str());
      return 1;
    }
    ids.push_back(id.value());
  }
  // Before the privileges go: the admin address may need root, as listeners may.
  auto admin = StartAdmin(config, *engine.value());
  if (!admin.ok()) {
    Logf("%s", admin.error().message().c_str());
    return 1;
  }
  // Bound and every key read: nothing left that needs root.
  if (!config.user.empty()) {
    Status dropped = DropPrivileges(config.user);
    if (!dropped.ok()) {
      Logf("%s", dropped.error().message().c_str());
      return 1;
    }
    Logf("running as user '%s' (uid %u, gid %u)", config.user.c_str(),
         static_cast<unsigned>(::getuid()), static_cast<unsigned>(::getgid()));
  }
  // systemd's STATUS= line, and the file form's last start-up line.
  // The io backend is named when it is not the default epoll (with "auto",
  // it says what this process got).
  const IoBackend io = engine.value()->io();
  const std::string io_part =
      io == IoBackend::kEpoll ? std::string() : std::string(", io ") + IoBackendName(io);
  const std::string status = std::to_string(ids.size()) + " listener" +
                             (ids.size() == 1 ? "" : "s") + ", mode " + RelayModeName(config.mode) +
                             io_part + ", " + std::to_string(engine.value()->workers()) +
                             " workers";
  if (from_file) {
    for (size_t i = 0; i < ids.size(); ++i) {
      PrintListener(config.listeners[i], engine.value()->ListenAddress(ids[i]));
    }
    Logf("%s", status.c_str());
  } else {
    auto bound = engine.value()->ListenAddress(ids[0]);
    auto limit = engine.value()->MaxConnections(ids[0]);
    Logf(
        "listening on %s, backend %s, mode %s%s, at most %zu connections, %zu "
        "workers",
        bound.ok() ? bound->ToString().c_str() : "?", flags.backend.ToString().c_str(),
        RelayModeName(config.mode), io_part.c_str(), limit.ok() ? limit.value() : size_t{0},
        engine.value()->workers());
  }

  SignalActions actions;
  // The engine holds its own references to the TLS contexts: a reload may
  // drop the setups it replaces.
  ConfigReloader reloader(*engine.value(), flags.config_file, config, engine_options, ids,
                          access_log.value());
  actions.reload = [from_file, &reloader] {
    if (!from_file) return Logf("SIGHUP: no configuration file to reload; ignored");
    NotifyReloading();
    reloader.Reload();
    NotifyReady("configuration reloaded");
  };

  if (takeover) takeover->Finish(*engine.value(), ids);
  // Declared after the engine and the reloader, so it stops before they go.
  std::unique_ptr<upgrade::UpgradeServer> upgrades;
  if (!config.upgrade_socket.empty()) {
    auto served = ServeUpgrades(config.upgrade_socket, *engine.value(),
                                [&reloader] { return reloader.Running(); });
    if (!served.ok()) {
      Logf("%s", served.error().message().c_str());
      // After a takeover the old process drains already: serve on, without
      // upgrades, rather than leave nobody serving.
      if (!takeover) return 1;
    } else {
      upgrades = std::move(served.value());
    }
  }
  actions.reopen_logs = [&config, sink = access_log.value().get()] { ReopenLogs(config, sink); };
  // SIGUSR2: whatever binary is installed at the path this one started
  // from now takes over, as with --upgrade, but inside this process's
  // cgroup: under systemd it becomes the service's main process.
  actions.upgrade = [&config, &flags, &engine, binary = ExecutablePath()] {
    if (config.upgrade_socket.empty()) {
      return Logf("SIGUSR2: no upgrade_socket to hand the listening sockets over; ignored");
    }
    if (engine.value()->Metrics().draining) return Logf("SIGUSR2: draining; ignored");
    auto successor = StartSuccessor(binary, flags.config_file);
    if (!successor.ok()) return Logf("SIGUSR2: %s", successor.error().message().c_str());
    Logf("SIGUSR2: started %s --config %s --upgrade (process %d)", binary.c_str(),
         flags.config_file.c_str(), static_cast<int>(successor.value()));
  };
  NotifyReady(status);
  stop_signals->ServeUntilStopped(*engine.value(), config.drain_grace, actions);
  if (admin.value()) admin.value()->Stop();
  PrintTotals(engine.value()->Stats());
  return 0;
}

}  // namespace
}  // namespace zrelay

int main(int argc, char** argv) { return zrelay::Main(argc, argv); }
