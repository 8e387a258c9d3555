// HealthChecker: active health checks of a backend pool's endpoints.
//
//   auto checker = HealthChecker::Start(loop, options, targets,
//       [&](size_t i, bool healthy, const std::string& reason) { ... });
//
// Each interval, every target gets a non-blocking TCP connect, then a TLS
// handshake when it originates TLS, bounded by options.timeout; then the
// connection is closed cleanly (close_notify and FIN, never a reset for a
// check that passed). A target is marked down after options.fall
// consecutive failures and up again after options.rise consecutive
// successes. Checks of many targets are spread over the interval, so a large
// pool does not connect to all its backends in the same millisecond.
//
// Threading: everything runs on one EventLoop's thread. TLS checks write
// with write(2), so that thread must block or ignore SIGPIPE (zrelay's
// workers do).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/address.h"
#include "engine/event_loop.h"
#include "engine/result.h"
#include "relay/health_options.h"

typedef struct ssl_ctx_st SSL_CTX;  // NOLINT: OpenSSL's own forward declaration

namespace zrelay {

struct HealthTarget {
  Address address;         // endpoint to check (IP or unix)
  SSL_CTX* tls = nullptr;  // non-null: a TLS handshake after the connect (not owned)
  std::string sni = {};    // name sent and verified in that handshake
};

// Called on the checker's loop thread when a target changes state; `reason`
// says why ("connect: Connection refused", "TLS handshake: certificate verify
// failed: ...", "connect: timed out after 1000 ms", "2 checks passed").
using OnHealthChange = std::function<void(size_t target, bool healthy, const std::string& reason)>;

class HealthChecker {
 public:
  // Starts checking every target each options.interval, on `loop` (call on
  // the loop's thread). Every target starts healthy (so traffic flows before
  // the first round). The SSL_CTXs must outlive the checker. Errors name the
  // option or target at fault ("health check timeout (2000 ms) must be
  // shorter than its interval (1000 ms)"). `on_change` may be empty.
  static Result<std::unique_ptr<HealthChecker>> Start(EventLoop& loop,
                                                      const HealthCheckOptions& options,
                                                      std::vector<HealthTarget> targets,
                                                      OnHealthChange on_change);
  // On the loop's thread: cancels checks in flight and closes their sockets,
  // without calling on_change. Not from inside on_change; anywhere else on
  // the loop thread (another handler, a posted task) is fine.
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Whether `target` (an index into Start's targets) is up. Loop thread.
  bool healthy(size_t target) const;

 private:
  class Target;
  HealthChecker(EventLoop& loop, const HealthCheckOptions& options, OnHealthChange on_change);

  EventLoop& loop_;
  const HealthCheckOptions options_;
  const OnHealthChange on_change_;
  std::vector<std::unique_ptr<Target>> targets_;
};

}  // namespace zrelay
