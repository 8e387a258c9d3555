// ClientConn: the part every client connection shares.
//
// Connect (engine Connector, with the run's connect timeout), TCP_NODELAY,
// the transport (plain or TLS) and its handshake, readiness dispatch, a
// fairness yield through the loop's ready list, one timer, and error
// accounting. A mode (bulk, rr, connect, idle) derives and supplies
// OnConnected() and Pump().
//
// Lifetime: connections are owned by their ClientSession for the whole run
// and never freed from inside their own callbacks; closing a socket only
// unregisters the watch and closes the fd, so the object stays valid. A
// connection that reconnects (connect mode) starts the next connect from
// the ready list, never from inside an fd callback: the next fd may reuse
// the number and must not receive the old one's queued events.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/connector.h"
#include "engine/event_loop.h"
#include "engine/timer_wheel.h"
#include "engine/unique_fd.h"
#include "tools/load/session.h"
#include "tools/load/transport.h"

namespace zrelay::load {

class ClientConn : protected FdHandler,
                   protected ConnectHandler,
                   protected TimerHandler,
                   protected ReadyHandler {
 public:
  ClientConn(ClientSession& session, uint64_t id);
  ~ClientConn() override;
  ClientConn(const ClientConn&) = delete;
  ClientConn& operator=(const ClientConn&) = delete;

  // Starts the connection's work (usually: connect).
  virtual void Start() = 0;
  // The run's time is up. Default: close and finish.
  virtual void Stop();
  // Close now, without counting anything, and finish.
  void Abort();

  bool finished() const { return finished_; }
  uint64_t id() const { return id_; }

 protected:
  enum class Phase { kIdle, kConnecting, kHandshake, kOpen, kClosed };

  // Starts a connect to the target. OnConnected() or a counted error follows.
  void Connect();
  // The transport is ready for traffic (after TCP connect and TLS handshake).
  virtual void OnConnected() = 0;
  // The socket may have made progress: move bytes. Called on fd events and
  // from the ready list after Yield().
  virtual void Pump() = 0;
  // The timer armed with ArmTimer() fired. Default: a timeout error.
  virtual void OnTimerFired();
  // After a counted error closed the socket. Default: Finish().
  virtual void OnFailed();
  // A Yield() came due while the socket is closed (connect mode uses it to
  // start its next connection outside fd callbacks). Default: nothing.
  virtual void OnReadyClosed() {}

  // Counts an error of `kind`, closes the socket and calls OnFailed().
  void Fail(ErrorKind kind, const std::string& detail);
  // Fail() from an IoResult of kError (or an unexpected kEof).
  void FailIo(const IoResult& r, const char* what);
  // Closes the socket (RST with `reset`, else FIN). Safe to call twice.
  void CloseSocket(bool reset = false);
  // Reports to the session that this connection is done for good. Once.
  void Finish();
  // Ask for another Pump() next turn (the fairness budget ran out).
  void Yield() { session_.loop().ScheduleReady(this); }

  void ArmTimer(Duration d) { session_.loop().ArmTimer(timer_, d); }
  void CancelTimer() { session_.loop().CancelTimer(timer_); }

  ClientSession& session() { return session_; }
  const Config& config() const { return session_.config(); }
  Counters& counters() { return session_.counters(); }
  Transport& io() { return *transport_; }
  Phase phase() const { return phase_; }

 private:
  void OnConnect(Result<UniqueFd> fd) override;
  void OnFdEvent(FdWatch& watch, uint32_t events) override;
  void OnTimer(Timer& timer) override;
  void OnReady() override;
  void RunHandshake();

  ClientSession& session_;
  uint64_t id_;
  bool open_slot_released_ = false;  // see ClientSession::ReleaseOpenSlot
  Phase phase_ = Phase::kIdle;
  bool finished_ = false;
  FdWatch watch_;
  UniqueFd fd_;
  Connector connector_;
  Timer timer_;
  std::unique_ptr<Transport> transport_;
};

}  // namespace zrelay::load
