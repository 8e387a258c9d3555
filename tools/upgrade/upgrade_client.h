// The new zrelayd's side of an upgrade (protocol.h): take the running
// process's listening sockets, build on them, then say ready.
//
//   auto client = UpgradeClient::Connect(path);        // nobody there: error
//   auto handover = client->TakeSockets();
//   ... Listen() with ListenOptions::inherited_sockets from handover ...
//   client->Ready(getpid());  // the old process drains from here on
//   ... UpgradeServer::Start({.path = path, ...})  // for the next upgrade
//
// Dropping the client before Ready() leaves the old process serving as if
// nothing had happened.
#pragma once

#include <sys/types.h>

#include <string>

#include "engine/clock.h"
#include "engine/result.h"
#include "engine/unique_fd.h"
#include "tools/upgrade/protocol.h"

namespace zrelay::upgrade {

class UpgradeClient {
 public:
  // Connects to the process serving `path`; when none does, the error says
  // "no zrelayd is serving upgrade_socket PATH" and why.
  static Result<UpgradeClient> Connect(const std::string& path,
                                       Duration timeout = seconds(10));

  // Asks for the listening sockets and receives them all.
  Result<Handover> TakeSockets();

  // Says this process (`pid`) serves now, and waits for the old process's
  // acknowledgement: after it, the old one no longer serves the path.
  Status Ready(pid_t pid);

 private:
  UpgradeClient(std::string path, UniqueFd fd, Duration timeout)
      : path_(std::move(path)), fd_(std::move(fd)), timeout_(timeout) {}
  Error Failed(const Error& error) const;

  std::string path_;
  UniqueFd fd_;
  Duration timeout_;
};

}  // namespace zrelay::upgrade
