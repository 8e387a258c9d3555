// zrelayd's zero-downtime upgrade (tools/upgrade), in terms of its engine
// and listeners:
//
//   old zrelayd:  ServeUpgrades(path, engine, ...)    hands its sockets to the
//                                                     next zrelayd, then drains
//   new zrelayd:  auto takeover = Takeover::Begin(path, listeners);
//                 engine->Listen(...) for each listener  (on the old sockets)
//                 takeover->Finish(engine, ids);          the old one drains
//                 ServeUpgrades(path, engine, ...)        for the next upgrade
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/result.h"
#include "relay/relay.h"
#include "tools/upgrade/upgrade_client.h"
#include "tools/upgrade/upgrade_server.h"
#include "tools/zrelayd_listeners.h"

namespace zrelay {

// The new process's side, from the sockets taken to the old one told to drain.
class Takeover {
 public:
  // Takes the listening sockets of the zrelayd serving `path` and offers
  // them to every listener (ListenOptions::inherited_sockets: each adopts
  // those bound to its addresses). Errors: nobody serves `path`, or it
  // refused or failed; the old process then serves on unchanged.
  static Result<Takeover> Begin(const std::string& path, std::vector<ListenerSetup>& listeners);

  // Once every listener accepts: logs the sockets no listener took (closed
  // here), and tells the old process this one is ready, which makes it
  // drain. A failure is logged: this process serves on either way.
  void Finish(const Engine& engine, const std::vector<ListenerId>& ids);

 private:
  Takeover(upgrade::UpgradeClient client, upgrade::Handover handover)
      : client_(std::move(client)), handover_(std::move(handover)) {}

  upgrade::UpgradeClient client_;
  upgrade::Handover handover_;  // owns the received sockets until Finish
};

// A running listener: its name (for the log of the process that takes its
// sockets) and its id.
struct NamedListener {
  std::string name;
  ListenerId id;
};
// The listeners running now (a reload changes them). Called on the upgrade
// server's thread.
using RunningListeners = std::function<std::vector<NamedListener>()>;

// Serves `path` for the next upgrade: hands over the listening sockets of
// the listeners `running` gives when a new process asks and, once that
// process is ready, logs it and raises SIGTERM: this process drains exactly
// as on SIGTERM. `engine` must outlive the server.
Result<std::unique_ptr<upgrade::UpgradeServer>> ServeUpgrades(const std::string& path,
                                                              const Engine& engine,
                                                              RunningListeners running);

// SIGUSR2: starts `binary --config config_file --upgrade`, the successor
// that takes this process's sockets over upgrade_socket. It runs detached
// (no child of this process) but in its cgroup, so under systemd it is part
// of the service and may become its main process. Returns its pid; whether
// it takes over shows later (on_ready, or its own exit status).
Result<pid_t> StartSuccessor(const std::string& binary, const std::string& config_file);

}  // namespace zrelay
