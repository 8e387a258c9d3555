#include "tools/upgrade/upgrade_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "tools/log/log.h"

namespace zrelay::upgrade {

Result<std::unique_ptr<UpgradeServer>> UpgradeServer::Start(UpgradeServerOptions options) {
  Result<BoundPath> bound = ListenOnPath(options.path);
  if (!bound.ok()) return bound.error();
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return Error::FromErrno(errno, "eventfd");
  std::unique_ptr<UpgradeServer> server(
      new UpgradeServer(std::move(options), std::move(bound.value()), std::move(wake)));
  server->thread_ = std::thread([s = server.get()] { s->Run(); });
  return server;
}

UpgradeServer::UpgradeServer(UpgradeServerOptions options, BoundPath bound, UniqueFd wake)
    : options_(std::move(options)), bound_(std::move(bound)), wake_(std::move(wake)) {}

UpgradeServer::~UpgradeServer() {
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof(one));
  thread_.join();
  if (!handed_over_) RemoveIfOurs(options_.path, bound_);
}

void UpgradeServer::Run() {
  UniqueFd client;
  Phase phase = Phase::kAwaitRequest;
  TimePoint deadline{};
  for (;;) {
    pollfd fds[3] = {{wake_.get(), POLLIN, 0},
                     {bound_.fd.get(), POLLIN, 0},
                     {client ? client.get() : -1, POLLIN, 0}};
    int ready = ::poll(fds, 3, client ? PollTimeoutMs(deadline) : -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      Logf("upgrade: poll: %s; no more upgrades through %s", std::strerror(errno),
           options_.path.c_str());
      return;
    }
    if (fds[0].revents != 0) return;
    if (fds[1].revents != 0) Accept(client, phase, deadline);
    if (client && fds[2].revents != 0 && !Serve(client, phase, deadline)) return;
    if (client && Clock::now() >= deadline) {
      Drop(client, phase == Phase::kAwaitRequest ? "no request in time"
                                                 : "the new process was not ready in time");
    }
  }
}

void UpgradeServer::Accept(UniqueFd& client, Phase& phase, TimePoint& deadline) {
  UniqueFd accepted(::accept4(bound_.fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!accepted) return;  // gone before we got to it, or out of fds: it may try again
  if (client) {
    // A refusal of a few bytes fits the fresh socket's buffer: this never waits.
    (void)SendRefused(accepted.get(), "another upgrade is in progress",
                      Clock::now() + options_.message_timeout);
    return;
  }
  client = std::move(accepted);
  phase = Phase::kAwaitRequest;
  deadline = Clock::now() + options_.message_timeout;
}

bool UpgradeServer::Serve(UniqueFd& client, Phase& phase, TimePoint& deadline) {
  Result<Message> message =
      ReceiveMessage(client.get(), Clock::now() + options_.message_timeout, wake_.get());
  if (!message.ok()) {
    if (message.error().code().value() == ECANCELED) return false;  // we are stopping
    Drop(client, phase == Phase::kAwaitReady && message.error().code().value() == ECONNRESET
                     ? "the new process went away before it was ready"
                     : message.error().message());
    return true;
  }
  const TimePoint send_deadline = Clock::now() + options_.message_timeout;
  if (phase == Phase::kAwaitRequest) {
    if (Status s = CheckRequest(message.value()); !s.ok()) {
      Drop(client, s.error().message());
      return true;
    }
    Result<std::vector<HandedSocket>> sockets = options_.sockets();
    if (!sockets.ok()) {
      (void)SendRefused(client.get(), sockets.error().message(), send_deadline);
      Drop(client, "cannot hand over the listening sockets: " + sockets.error().message());
      return true;
    }
    if (Status s = SendSockets(client.get(), sockets.value(), send_deadline); !s.ok()) {
      Drop(client, "sending the listening sockets: " + s.error().message());
      return true;
    }
    phase = Phase::kAwaitReady;
    deadline = Clock::now() + options_.ready_timeout;
    return true;
  }
  Result<pid_t> pid = ReadyPid(message.value());
  if (!pid.ok()) {
    Drop(client, pid.error().message());
    return true;
  }
  // Closed before the acknowledgement, so that when the new process binds
  // the path after it, nobody listens here any more: its connect is refused
  // and it replaces the file as stale. on_ready runs first too: once the new
  // process has its acknowledgement, this one is already on its way out.
  bound_.fd.Reset();
  handed_over_ = true;
  options_.on_ready(pid.value());
  if (Status s = SendReadyAck(client.get(), send_deadline); !s.ok()) {
    Logf("upgrade: acknowledging process %d: %s", static_cast<int>(pid.value()),
         s.error().message().c_str());
  }
  return false;
}

void UpgradeServer::Drop(UniqueFd& client, const std::string& why) {
  Logf("upgrade: dropped a client of %s: %s; still serving", options_.path.c_str(), why.c_str());
  client.Reset();
}

}  // namespace zrelay::upgrade
