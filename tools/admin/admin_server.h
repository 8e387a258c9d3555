// zrelayd's admin endpoint: a small HTTP/1.1 server on a thread of its own,
// away from the relay's workers, so nothing an admin client does (stall,
// trickle bytes, send garbage) can slow a relayed byte or another scrape.
//
//   GET /metrics  200, the metrics source's snapshot as Prometheus text
//   GET /healthz  200 "ok" while serving; 503 "draining" once a drain started
//   HEAD of both, as GET without the body
//   other paths 404, other methods 405, a malformed request 400, a head
//   over max_head_bytes 431; past max_connections clients, 503 at once.
//
// One request per connection: every answer says Connection: close. A client
// has `timeout` from its accept to send its request and read the answer;
// then it is closed, whatever it is doing. All sockets are non-blocking and
// served by one poll() loop.
//
//   auto admin = AdminServer::Start({.address = address,
//                                    .metrics = [&] { return engine.Metrics(); }});
//   ...
//   admin.value()->Stop();  // or destroy it
#pragma once

#include <functional>
#include <memory>
#include <thread>

#include "engine/address.h"
#include "engine/clock.h"
#include "engine/result.h"
#include "engine/unique_fd.h"
#include "relay/metrics.h"

namespace zrelay {

struct AdminServerOptions {
  Address address;  // TCP or unix; port 0 lets the kernel pick (address() says which)
  // Called on the admin thread for each /metrics and /healthz.
  std::function<MetricsSnapshot()> metrics;
  size_t max_connections = 16;      // admin clients served at once
  Duration timeout = seconds(5);    // from accept to the answer written
  size_t max_head_bytes = 8 << 10;  // request line and headers
};

class AdminServer {
 public:
  // Binds, listens and starts the thread. A bind error names the address.
  static Result<std::unique_ptr<AdminServer>> Start(AdminServerOptions options);
  ~AdminServer();  // Stop()
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // The bound address (with the kernel's port when asked for 0).
  const Address& address() const { return address_; }

  // Closes every admin connection and joins the thread. Idempotent; call it
  // from the thread that started the server.
  void Stop();

 private:
  class Loop;
  AdminServer(Address address, UniqueFd wake, std::unique_ptr<Loop> loop);

  Address address_;
  UniqueFd wake_;  // eventfd: Stop() writes it, the loop returns
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
};

}  // namespace zrelay
