#include "tools/zrelayd_upgrade.h"

#include <signal.h>
#include <unistd.h>

#include <set>

#include "tools/log/log.h"

namespace zrelay {

Result<Takeover> Takeover::Begin(const std::string& path, std::vector<ListenerSetup>& listeners) {
  auto client = upgrade::UpgradeClient::Connect(path);
  if (!client.ok()) return client.error();
  auto handover = client->TakeSockets();
  if (!handover.ok()) return handover.error();
  std::vector<int> fds;
  for (const upgrade::HandedSocket& socket : handover->sockets) fds.push_back(socket.fd.get());
  for (ListenerSetup& listener : listeners) listener.options.inherited_sockets = fds;
  Logf("upgrade: took %zu listening sockets from process %d through %s",
       handover->sockets.size(), static_cast<int>(handover->from), path.c_str());
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
    ::kill(::getpid(), SIGTERM);
  };
  auto server = upgrade::UpgradeServer::Start(std::move(options));
  if (server.ok()) Logf("upgrade: serving %s for the next upgrade", path.c_str());
  return server;
}

}  // namespace zrelay
