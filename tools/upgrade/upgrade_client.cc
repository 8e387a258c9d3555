#include "tools/upgrade/upgrade_client.h"

#include <cerrno>
#include <thread>

#include "tools/upgrade/upgrade_path.h"

namespace zrelay::upgrade {

Result<UpgradeClient> UpgradeClient::Connect(const std::string& path, Duration timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  for (;;) {
    Result<UniqueFd> fd = ConnectToPath(path);
    if (fd.ok()) return UpgradeClient(path, std::move(fd.value()), timeout);
    // A full backlog: the server is there, busy with another client.
    if (fd.error().code().value() == EAGAIN && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(10));
      continue;
    }
    return Error(fd.error().code(), "no zrelayd is serving upgrade_socket " + path + " (" +
                                        fd.error().message() + ")");
  }
}

Result<Handover> UpgradeClient::TakeSockets() {
  const TimePoint deadline = Clock::now() + timeout_;
  Status sent = SendRequest(fd_.get(), deadline);
  // Read even when the request could not be sent: a server busy with
  // another upgrade refuses at once and closes, and its reason is waiting.
  Result<Handover> handover = ReceiveSockets(fd_.get(), deadline);
  if (handover.ok()) return handover;
  const bool refused = handover.error().code().value() == EBUSY;
  return Failed(sent.ok() || refused ? handover.error() : sent.error());
}

Status UpgradeClient::Ready(pid_t pid) {
  const TimePoint deadline = Clock::now() + timeout_;
  if (Status s = SendReady(fd_.get(), pid, deadline); !s.ok()) return Failed(s.error());
  if (Status s = ReceiveReadyAck(fd_.get(), deadline); !s.ok()) return Failed(s.error());
  return Status::Ok();
}

Error UpgradeClient::Failed(const Error& error) const {
  return Error(error.code(), "upgrade through " + path_ + ": " + error.message());
}

}  // namespace zrelay::upgrade
