// Pair: two legs and the two directions between them, living on one worker.
//
//   Pipe():          [kHandshaking] -> kRelaying -> kClosed
//   plain listener:  [kPreamble] -> kConnecting -> [kSendingProxy] -> [kHandshaking]
//                    -> kRelaying -> kClosed
//   TLS listener:    [kPreamble] -> kHandshaking -> kConnecting -> [kSendingProxy]
//                    -> [kHandshaking] -> kRelaying -> kClosed
//
// (Bracketed: only when there is something to do: a PROXY header or
// ClientHello to read from the client (ClientPreamble) under the preamble
// timeout, a PROXY header to write to the backend, a TLS leg's handshake.)
// The preamble comes first, so a client that fails it costs no backend
// connection, and its result picks the route whose pool is connected.
// A PROXY header to the backend is written whole right after its connect,
// before any other byte (TLS included). kHandshaking runs
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
// delivered in full, and the pair reports kTruncated. Such a peer's kernel
// may answer with RST instead of (or after) its FIN: a reset after its EOF
// changes nothing, and one before it, once everything owed to it was
// written and nothing it sent is in flight, is the same departure:
// kTruncated too, both sockets closed normally (PeerLeftWithoutCloseNotify).
// Either way on_close runs exactly once, then the pair deletes itself at the
// end of the loop turn.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/connector.h"
#include "engine/event_loop.h"
#include "engine/timer_wheel.h"
#include "relay/backend_pool.h"
#include "relay/client_preamble.h"
#include "relay/direction.h"
#include "relay/listener_counters.h"
#include "relay/pair_options.h"
#include "relay/plain_transport.h"
#include "relay/pump.h"
#include "relay/relay.h"
#include "relay/sni_router.h"
#include "relay/tls_transport.h"

namespace zrelay {

class Worker;

// How a listener's pairs reach their backends: its pool and its settings,
// and where they count what they do. Owned by the listener, which outlives
// its pairs.
struct BackendRoute {
  BackendPool* pool = nullptr;
  ListenerCounters* counters = nullptr;
  Duration connect_timeout{};  // for all tries of a pair together
  int retries = 0;             // tries after the first, each to another endpoint
  Duration idle_timeout{};
  Duration handshake_timeout{};
  std::string detail_prefix;  // "listener web: " for a named listener, else empty
};

// How a listener's clients are led to a BackendRoute: what each must send
// first (the preamble), and the routes that can follow from it. Owned by
// the listener, with the routes it points at.
struct ClientRouting {
  PreambleOptions preamble;
  std::vector<CidrBlock> proxy_from;  // peers allowed to send a PROXY header; empty: any
  const BackendRoute* fallback = nullptr;  // the listener's own backends
  SniRouter sni_router;                    // route_by kSni
  std::vector<const BackendRoute*> routes;  // by the router's route index
  const PairOptions* pair_options = nullptr;  // ListenOptions::pair; each pair its own filters

  bool TrustsProxyFrom(const Address& peer) const;
  const BackendRoute& RouteFor(const std::string& server_name) const;
};

// Where a pair made from two legs came from, when it was more than two
// sockets (Connection::Pipe: a listener's client and the backend it
// connected).
struct PairOrigin {
  // A listener's, for this worker: the pair counts its bytes and close
  // into them as the listener's own pairs do; A is the client.
  ListenerWorkerCounters* counters = nullptr;
  Address client{};   // PairStats::client
  Address backend{};  // PairStats::backend
};

class Pair final : public ReadyHandler,
                   public Deferrable,
                   private FdHandler,
                   private TimerHandler,
                   private ConnectHandler {
 public:
  // Relays between two connected legs, with `options` (checked here: a bad
  // one closes the pair with kError naming the field). Each leg's preread
  // goes to the other leg first. Worker thread only.
  static void Start(Worker& worker, Leg a, Leg b, OnClose on_close,
                    const PairOptions& options = {}, const PairOrigin& origin = {});
  // Relays between an accepted client (from `peer`) and a backend endpoint
  // the pool of its route picks for it. The client's preamble (PROXY
  // header, ClientHello) comes first, when `routing` asks for one. With
  // `client_tls`, the client leg is TLS-terminated and its handshake comes
  // next; with the endpoint's tls, TLS is originated to the backend. A
  // failed connect is retried on another endpoint, up to route.retries
  // times within connect_timeout.
  static void StartWithBackend(Worker& worker, Leg client, const Address& peer, SSL_CTX* client_tls,
                               const ClientRouting& routing, OnClose on_close);

  ~Pair() override;

  // Closes with RST on both legs (Drain's deadline, engine shutdown).
  void Abort(CloseCause cause, std::string detail);

  // Intrusive list links, owned by Worker.
  Pair* list_prev = nullptr;
  Pair* list_next = nullptr;

 private:
  enum class State { kPreamble, kConnecting, kSendingProxy, kHandshaking, kRelaying, kClosed };

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
  // Listener pairs: reads the client's preamble, or goes on at once when
  // the listener asks for none.
  void BeginPreamble();
  void RunPreamble();
  // After the backend connect, when the endpoint asks for a PROXY header.
  void BeginSendingProxy(BackendOptions::SendProxy version);
  void SendProxy();
  void BackendReady();
  void BeginHandshakes();
  bool RunHandshakes();
  void HandshakesDone();
  void ConnectBackend();
  // After a failed connect: true when another endpoint is being tried.
  bool RetryBackend();
  void BeginRelaying();
  void Run();
  void RunPumps();
  // Listener pairs: counts the bytes a RunPumps turn delivered, given the
  // worker's spliced bytes before it.
  void CountBytes(uint64_t a_to_b, uint64_t b_to_a, uint64_t spliced_before);
  // Listener pairs: a close while handshaking fails every TLS handshake
  // still unfinished (a Drain deadline's close counts as neither).
  void CountUnfinishedHandshakes(CloseCause cause);
  PumpResult Move(Direction& dir, PairLeg& src, PairLeg& dst, const Direction& other,
                  size_t budget);
  PumpResult Discard(Direction& dir, PairLeg& src, PairLeg& dst, const Direction& other,
                     size_t budget);
  void Fail(const char* leg_name, const char* what, int err, const std::string& detail);
  // Whether a failure (errno `err`) on `leg` is its TLS peer gone without
  // close_notify when it was owed nothing (kTruncated, not kReset).
  bool PeerLeftWithoutCloseNotify(const PairLeg& leg, int err) const;
  void Close(CloseCause cause, int err, std::string detail);

  void OnFdEvent(FdWatch& watch, uint32_t events) override;
  void OnReady() override { Run(); }
  void OnTimer(Timer& timer) override;
  // After a pump run: a direction its rate limit paused resumes when its
  // bucket holds tokens again.
  void ArmRateTimer();
  void OnRateTimer();
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
  Timer rate_timer_;  // resumes directions their rate limit paused
  Duration idle_timeout_{};
  Duration handshake_timeout_{};
  // Listener pairs: how the client is routed, the route it took (the
  // fallback until the preamble picked one), and whether the backend is
  // still to connect.
  const ClientRouting* routing_ = nullptr;
  const BackendRoute* route_ = nullptr;
  std::unique_ptr<ClientPreamble> preamble_;  // while reading it
  // The address the client connected to, as its PROXY header said (unset:
  // the accepted socket's own), for a PROXY header sent on.
  std::optional<Address> client_destination_;
  std::string proxy_out_;  // a PROXY header being written to the backend
  ListenerWorkerCounters* counters_ = nullptr;  // the listener's, for this worker
  bool backend_pending_ = false;
  Address peer_;               // the client, for the balancer
  BackendChoice choice_;       // the endpoint connecting or connected, leased
  Address backend_address_;    // the endpoint connected or tried last
  std::vector<size_t> tried_;  // endpoints tried so far (only with retries)
  int tries_left_ = 0;
  TimePoint connect_deadline_;
  TimePoint connect_started_;  // this try's, for the endpoint's latency histogram
  TimePoint started_;
  TimePoint last_active_;
  std::unique_ptr<Connector> connector_;  // listener pairs, while connecting
  OnClose on_close_;
};

}  // namespace zrelay
