// Pair: two legs and the two directions between them, living on one worker.
//
//   Pipe():              [kHandshaking] -> kRelaying -> kClosed
//   plain listener:      kConnecting -> [kHandshaking] -> kRelaying -> kClosed
//   TLS listener:        kHandshaking -> kConnecting -> [kHandshaking] -> kRelaying -> kClosed
//
// (Bracketed: only when a TLS leg has a handshake to do.) kHandshaking runs
// every unfinished TLS handshake under the handshake timeout. A TLS
// listener's client finishes its handshake before its backend is connected,
// so a client that sends nothing, garbage or half a ClientHello never costs
// a backend connection; then the backend is connected (under the connect
// timeout) and, when TLS is originated to it, handshaken (under a fresh
// handshake timeout).
//
// A reset or error on either leg aborts the pair: both sockets close with
// RST so the peers learn it was not a clean end. When both directions are
// done, the sockets close normally. A TLS leg that ended without
// close_notify can take no more writes (OpenSSL makes its session fatal):
// the direction towards it discards from then on, the other one is still
// delivered in full, and the pair reports kTruncated. Either way on_close
// runs exactly once, then the pair deletes itself at the end of the loop
// turn.
#pragma once

#include <memory>
#include <string>

#include "engine/connector.h"
#include "engine/event_loop.h"
#include "engine/timer_wheel.h"
#include "relay/direction.h"
#include "relay/plain_transport.h"
#include "relay/pump.h"
#include "relay/relay.h"
#include "relay/tls_transport.h"

namespace zrelay {

class Worker;

class Pair final : public ReadyHandler,
                   public Deferrable,
                   private FdHandler,
                   private TimerHandler,
                   private ConnectHandler {
 public:
  // Relays between two connected legs. Worker thread only.
  static void Start(Worker& worker, Leg a, Leg b, OnClose on_close);
  // Relays between an accepted client and a backend it connects. With
  // `client_tls`, the client leg is TLS-terminated and its handshake comes
  // first; with backend.tls, TLS is originated to the backend.
  static void StartWithBackend(Worker& worker, Leg client, SSL_CTX* client_tls,
                               const BackendOptions& backend, Duration connect_timeout,
                               OnClose on_close);

  ~Pair() override;

  // Closes with RST on both legs (Drain's deadline, engine shutdown).
  void Abort(CloseCause cause, std::string detail);

  // Intrusive list links, owned by Worker.
  Pair* list_prev = nullptr;
  Pair* list_next = nullptr;

 private:
  enum class State { kConnecting, kHandshaking, kRelaying, kClosed };

  struct PairLeg {
    PairLeg(UniqueFd f, Syscalls& sys) : fd(std::move(f)), plain(watch, sys) {}
    UniqueFd fd;
    FdWatch watch;
    PlainTransport plain;
    std::unique_ptr<TlsTransport> tls;
    Transport& io() { return tls ? *tls : static_cast<Transport&>(plain); }
  };

  Pair(Worker& worker, OnClose on_close);

  // Takes ownership of `from` and registers its fd. On failure the pair is
  // closed (and gone) and this returns false. `accepted`: our own listener
  // accepted it, so it is O_NONBLOCK and TCP_NODELAY already.
  bool AttachLeg(PairLeg& leg, Leg&& from, bool accepted);
  void BeginHandshakes();
  bool RunHandshakes();
  void HandshakesDone();
  void ConnectBackend();
  void BeginRelaying();
  void Run();
  void RunPumps();
  PumpResult Move(Direction& dir, PairLeg& src, PairLeg& dst, const Direction& other,
                  size_t budget);
  PumpResult Discard(Direction& dir, PairLeg& src, PairLeg& dst, const Direction& other,
                     size_t budget);
  void Fail(const char* leg_name, const char* what, int err, const std::string& detail);
  void Close(CloseCause cause, int err, std::string detail);

  void OnFdEvent(FdWatch& watch, uint32_t events) override;
  void OnReady() override { Run(); }
  void OnTimer(Timer& timer) override;
  void OnConnect(Result<UniqueFd> fd) override;

  Worker& worker_;
  State state_ = State::kRelaying;
  bool engine_owned_fds_ = false;  // both sockets were made by the engine
  PairLeg a_;
  PairLeg b_;
  Direction a_to_b_;
  Direction b_to_a_;
  // The direction's destination is a truncated TLS leg: it discards (Move()).
  bool a_to_b_discards_ = false;
  bool b_to_a_discards_ = false;
  Timer timer_;  // handshake timeout(s), then idle timeout
  // Listener pairs, until their backend is connected.
  const BackendOptions* backend_ = nullptr;
  Duration connect_timeout_{};
  TimePoint started_;
  TimePoint last_active_;
  std::unique_ptr<Connector> connector_;  // listener pairs, while connecting
  OnClose on_close_;
};

}  // namespace zrelay
