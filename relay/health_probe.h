// HealthProbe: one health check of one endpoint at a time, for
// HealthChecker. A check is a non-blocking connect, then a TLS handshake when
// the target originates TLS, all within a timeout. A passed check closes its
// connection cleanly: plain TCP at once (FIN); TLS sends close_notify and
// FIN, then reads until the server's close_notify or EOF (taking its session
// tickets, so the next check resumes) for what is left of the timeout, so
// the close does not become a reset over unread bytes.
#pragma once

#include <string>

#include "engine/clock.h"
#include "engine/connector.h"
#include "engine/event_loop.h"
#include "engine/result.h"
#include "engine/timer_wheel.h"
#include "engine/unique_fd.h"
#include "relay/health_checker.h"
#include "ssl/tls_stream.h"

namespace zrelay {

class HealthProbeHandler {
 public:
  virtual ~HealthProbeHandler() = default;
  // The check passed (ok) or failed; the error's message says why without
  // the address, which the caller knows: "connect: Connection refused",
  // "connect: timed out after 1000 ms", "TLS handshake: certificate verify
  // failed: ...". Runs from a loop callback, never from inside Start().
  virtual void OnProbeDone(Status result) = 0;
};

// "1000 ms": how health check messages spell a duration.
std::string FormatMs(Duration d);

class HealthProbe : private FdHandler, private TimerHandler, private ConnectHandler {
 public:
  HealthProbe(EventLoop& loop, HealthTarget target);
  ~HealthProbe() override;  // Cancel()
  HealthProbe(const HealthProbe&) = delete;
  HealthProbe& operator=(const HealthProbe&) = delete;

  // Starts a check; `handler->OnProbeDone` runs exactly once, later, unless
  // Cancel() comes first. The clean close of the previous check, if it is
  // still waiting for the server, ends now.
  void Start(Duration timeout, HealthProbeHandler* handler);
  // Stops a check in flight (or a close in progress) without calling back,
  // and closes its socket.
  void Cancel();
  bool in_progress() const { return handler_ != nullptr; }

 private:
  enum class State {
    kIdle,
    kConnecting,   // the connector owns the socket
    kHandshaking,  // TLS handshake; timer_ is the check's deadline
    kClosing,      // passed; waiting for the server's close_notify or EOF
  };

  void OnConnect(Result<UniqueFd> fd) override;
  void OnFdEvent(FdWatch& watch, uint32_t events) override;
  void OnTimer(Timer& timer) override;
  void DriveHandshake();
  void BeginClose();
  void DriveClose();
  void CloseSocket();
  void Done(Status result);

  EventLoop& loop_;
  const HealthTarget target_;
  Connector connector_;
  FdWatch watch_;
  UniqueFd fd_;
  TlsStream tls_;
  Timer timer_;
  State state_ = State::kIdle;
  Duration timeout_{};
  TimePoint deadline_{};
  HealthProbeHandler* handler_ = nullptr;
};

}  // namespace zrelay
