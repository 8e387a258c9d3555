// zrelayd: a TCP relay daemon and load balancer, built on zrelay.
//
//   zrelayd --listen ADDR --backend ADDR [flags]   one listener, one backend
//   zrelayd --config FILE                          every listener of a TOML file
//   zrelayd --check FILE                           check the file and its certificates
//
// Runs in the foreground. SIGTERM or SIGINT: stop accepting, let open pairs
// finish for the drain grace, close the rest, print the totals, exit 0; a
// second SIGTERM or SIGINT closes the remaining pairs at once. SIGHUP is
// logged and ignored. Usage errors and files --check refuses exit 2; a setup
// failure (bind, certificates named by flags, --user) exits 1.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "relay/relay.h"
#include "tools/admin/zrelayd_admin.h"
#include "tools/config/config.h"
#include "tools/log/log.h"
#include "tools/zrelayd_flags.h"
#include "tools/zrelayd_listeners.h"
#include "tools/zrelayd_process.h"
#include "tools/zrelayd_report.h"
#include "tools/zrelayd_serve.h"

namespace zrelay {
namespace {

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
  std::printf("%s", CheckSummary(path, config.value()).c_str());
  return 0;
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
  auto listeners = SetUpListeners(config, engine_options, flags.config_file);
  if (!listeners.ok()) {
    Logf("%s", listeners.error().message().c_str());
    return from_file ? 2 : 1;  // as --check says of the same file
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
  if (from_file) {
    for (size_t i = 0; i < ids.size(); ++i) {
      PrintListener(config.listeners[i], engine.value()->ListenAddress(ids[i]));
    }
    Logf("%zu listener%s, mode %s, %zu workers", ids.size(), ids.size() == 1 ? "" : "s",
         ModeName(config.mode), engine.value()->workers());
  } else {
    auto bound = engine.value()->ListenAddress(ids[0]);
    auto limit = engine.value()->MaxConnections(ids[0]);
    Logf(
        "listening on %s, backend %s, mode %s, at most %zu connections, %zu "
        "workers",
        bound.ok() ? bound->ToString().c_str() : "?", flags.backend.ToString().c_str(),
        ModeName(config.mode), limit.ok() ? limit.value() : size_t{0}, engine.value()->workers());
  }

  SignalActions actions;
  actions.reload = [from_file] {
    Logf("SIGHUP: %s", from_file ? "reloading the configuration is not supported yet; still running"
                                 : "no configuration file to reload; ignored");
  };
  actions.reopen_logs = [] { Logf("SIGUSR1: no log file to reopen"); };
  stop_signals->ServeUntilStopped(*engine.value(), config.drain_grace, actions);
  if (admin.value()) admin.value()->Stop();
  PrintTotals(engine.value()->Stats());
  return 0;
}

}  // namespace
}  // namespace zrelay

int main(int argc, char** argv) { return zrelay::Main(argc, argv); }
