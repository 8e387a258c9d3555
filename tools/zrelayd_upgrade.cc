#include "tools/zrelayd_upgrade.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include "engine/unique_fd.h"
#include "tools/log/log.h"
#include "tools/zrelayd_notify.h"

namespace zrelay {

Result<Takeover> Takeover::Begin(const std::string& path, std::vector<ListenerSetup>& listeners) {
  auto client = upgrade::UpgradeClient::Connect(path);
  if (!client.ok()) return client.error();
  auto handover = client->TakeSockets();
  if (!handover.ok()) return handover.error();
  std::vector<int> fds;
  for (const upgrade::HandedSocket& socket : handover->sockets) fds.push_back(socket.fd.get());
  // A TCP and a UDP listener on one address each take their own kind.
  for (ListenerSetup& listener : listeners) {
    listener.options.inherited_sockets = SocketsFor(listener.options.protocol, fds);
  }
  Logf("upgrade: took %zu listening sockets from process %d through %s", handover->sockets.size(),
       static_cast<int>(handover->from), path.c_str());
  return Takeover(std::move(client.value()), std::move(handover.value()));
}

void Takeover::Finish(const Engine& engine, const std::vector<ListenerId>& ids) {
  std::set<std::string> used;
  for (ListenerId id : ids) {
    auto addresses = engine.ListenAddresses(id);
    if (!addresses.ok()) continue;
    for (const Address& address : addresses.value()) used.insert(address.ToString());
  }
  std::set<std::string> unused;
  for (const upgrade::HandedSocket& socket : handover_.sockets) {
    if (used.count(socket.address) == 0 && unused.insert(socket.address).second) {
      Logf("upgrade: %s (listener %s of process %d) is in no listener here; closed",
           socket.address.c_str(), socket.listener.c_str(), static_cast<int>(handover_.from));
    }
  }
  // The listeners hold dup()s of what they adopted: these copies go.
  handover_.sockets.clear();
  Status ready = client_.Ready(::getpid());
  if (!ready.ok()) {
    Logf("%s; process %d may still be serving", ready.error().message().c_str(),
         static_cast<int>(handover_.from));
    return;
  }
  Logf("upgrade: serving; process %d drains", static_cast<int>(handover_.from));
}

Result<std::unique_ptr<upgrade::UpgradeServer>> ServeUpgrades(const std::string& path,
                                                              const Engine& engine,
                                                              RunningListeners running) {
  upgrade::UpgradeServerOptions options;
  options.path = path;
  options.sockets = [&engine,
                     running = std::move(running)]() -> Result<std::vector<upgrade::HandedSocket>> {
    std::vector<upgrade::HandedSocket> handed;
    for (const NamedListener& listener : running()) {
      auto sockets = engine.ListeningSockets(listener.id);
      if (!sockets.ok()) {
        return Error(sockets.error().code(),
                     "listener " + listener.name + ": " + sockets.error().message());
      }
      for (ListeningSocket& socket : sockets.value()) {
        handed.push_back({listener.name, socket.address.ToString(), std::move(socket.fd)});
      }
    }
    return handed;
  };
  options.on_ready = [](pid_t pid) {
    Logf("upgrade: process %d took over; draining", static_cast<int>(pid));
    NotifyMainPid(pid);  // before the drain, so systemd never sees the service stop
    ::kill(::getpid(), SIGTERM);
  };
  auto server = upgrade::UpgradeServer::Start(std::move(options));
  if (server.ok()) Logf("upgrade: serving %s for the next upgrade", path.c_str());
  return server;
}

Result<pid_t> StartSuccessor(const std::string& binary, const std::string& config_file) {
  // The pipe carries the new process's pid from the middle child, which
  // exits at once: the new zrelayd is nobody's child to reap, and stays in
  // this process's cgroup (under systemd: the service's).
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Error::FromErrno(errno, "upgrade: pipe");
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  pid_t middle = ::fork();
  if (middle < 0) return Error::FromErrno(errno, "upgrade: fork");
  if (middle == 0) {
    pid_t successor = ::fork();
    if (successor == 0) {
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);  // what a fresh start would have
      const char* argv[] = {binary.c_str(), "--config", config_file.c_str(), "--upgrade", nullptr};
      ::execv(binary.c_str(), const_cast<char* const*>(argv));
      _exit(127);
    }
    (void)!::write(write_end.get(), &successor, sizeof(successor));
    _exit(successor < 0 ? 1 : 0);
  }
  write_end.Reset();
  int status = 0;
  while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) {
  }
  pid_t successor = -1;
  if (::read(read_end.get(), &successor, sizeof(successor)) != sizeof(successor) || successor < 0) {
    return Error::Invalid("upgrade: could not start " + binary);
  }
  return successor;
}

}  // namespace zrelay
