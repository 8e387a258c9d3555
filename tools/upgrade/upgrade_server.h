// The running zrelayd's side of an upgrade: serves its upgrade socket on a
// thread of its own and hands its listening sockets to one new process at a
// time (protocol.h).
//
//   auto server = UpgradeServer::Start({.path = "/run/zrelayd/upgrade.sock",
//                                       .sockets = [&] { return ListeningSocketsOf(engine); },
//                                       .on_ready = [](pid_t pid) { /* drain */ }});
//
// A client that sends garbage, or stalls longer than its timeout, is dropped
// (and logged); serving goes on. While one upgrade is under way, other
// clients are refused (a message once begun is read to its end first, for
// message_timeout at most). Once a new process says it is ready, the server
// closes its listening socket, calls on_ready, acknowledges and stops: the
// path is the new process's from then on.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/clock.h"
#include "engine/result.h"
#include "engine/unique_fd.h"
#include "tools/upgrade/protocol.h"
#include "tools/upgrade/upgrade_path.h"

namespace zrelay::upgrade {

struct UpgradeServerOptions {
  std::string path;
  // The listening sockets to hand over, asked for on the server thread at
  // each request; an error refuses the client with its message.
  std::function<Result<std::vector<HandedSocket>>()> sockets;
  // The new process `pid` is ready and acknowledged; the server serves no
  // more. Runs on the server thread.
  std::function<void(pid_t pid)> on_ready;
  // A client's request after its connect, and every message once begun.
  Duration message_timeout = seconds(5);
  // From the sockets sent to the client's kReady: it builds its listeners
  // (reads certificates, starts workers) meanwhile.
  Duration ready_timeout = seconds(60);
};

class UpgradeServer {
 public:
  // Listens on options.path (upgrade_path.h: a stale file is replaced, a
  // live one is an error) and starts the thread.
  static Result<std::unique_ptr<UpgradeServer>> Start(UpgradeServerOptions options);
  // Stops the thread, and removes the path unless it was handed over.
  ~UpgradeServer();
  UpgradeServer(const UpgradeServer&) = delete;
  UpgradeServer& operator=(const UpgradeServer&) = delete;

 private:
  enum class Phase { kAwaitRequest, kAwaitReady };

  UpgradeServer(UpgradeServerOptions options, BoundPath bound, UniqueFd wake);
  void Run();
  void Accept(UniqueFd& client, Phase& phase, TimePoint& deadline);
  // Handles the client's next message; false when the server is done.
  bool Serve(UniqueFd& client, Phase& phase, TimePoint& deadline);
  void Drop(UniqueFd& client, const std::string& why);

  const UpgradeServerOptions options_;
  BoundPath bound_;
  UniqueFd wake_;  // eventfd: the destructor stops the thread
  bool handed_over_ = false;  // written by the thread, read after join
  std::thread thread_;
};

}  // namespace zrelay::upgrade
