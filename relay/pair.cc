#include "relay/pair.h"

#include <fcntl.h>
#include <sys/epoll.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "engine/socket.h"
#include "relay/worker.h"
#include "ssl/tls_context.h"
#include "ssl/tls_stream.h"

namespace zrelay {
namespace {

bool IsReset(int err) { return err == ECONNRESET || err == EPIPE || err == ECONNABORTED; }

std::string Milliseconds(Duration d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count()) + " ms";
}

}  // namespace

const char* RelayModeName(RelayMode mode) {
  switch (mode) {
    case RelayMode::kSplice: return "splice";
    case RelayMode::kCopy: return "copy";
    case RelayMode::kAuto: return "auto";
  }
  return "unknown";
}

const char* CloseCauseName(CloseCause cause) {
  switch (cause) {
    case CloseCause::kDone: return "done";
    case CloseCause::kReset: return "reset";
    case CloseCause::kTimeout: return "timeout";
    case CloseCause::kError: return "error";
    case CloseCause::kConnectFailed: return "connect-failed";
    case CloseCause::kDrained: return "drained";
    case CloseCause::kTruncated: return "truncated";
  }
  return "unknown";
}

Pair::Pair(Worker& worker, OnClose on_close)
    : worker_(worker),
      a_(UniqueFd(), worker.env().sys),
      b_(UniqueFd(), worker.env().sys),
      timer_(this),
      rate_timer_(this),
      idle_timeout_(worker.options().idle_timeout),
      handshake_timeout_(worker.options().handshake_timeout),
      started_(worker.loop().now()),
      last_active_(started_),
      on_close_(std::move(on_close)) {
  // splice needs both ends to be plain sockets; auto starts on copy.
  Path start = worker.options().mode == RelayMode::kSplice ? Path::kSplice : Path::kCopy;
  a_to_b_.path = b_to_a_.path = start;
  a_to_b_.auto_splice = b_to_a_.auto_splice = worker.options().mode == RelayMode::kAuto;
  worker_.Adopt(this);
}

Pair::~Pair() {
  // Engine shutdown destroys open pairs directly; closed ones have released
  // everything already.
  if (state_ != State::kClosed) {
    ReleaseDirection(a_to_b_, worker_.env());
    ReleaseDirection(b_to_a_, worker_.env());
    worker_.Forget(this);
  }
}

void Pair::Start(Worker& worker, Leg a, Leg b, OnClose on_close, const PairOptions& options,
                 const PairOrigin& origin) {
  auto* pair = new Pair(worker, std::move(on_close));
  pair->counters_ = origin.counters;
  pair->peer_ = origin.client;
  pair->backend_address_ = origin.backend;
  std::string a_preread = std::move(a.preread);
  std::string b_preread = std::move(b.preread);
  if (!pair->AttachLeg(pair->a_, std::move(a), /*accepted=*/false)) {
    TlsStream unused_b(b.ssl);  // the pair is gone; B's SSL (if any) is ours to free
    return;
  }
  if (!pair->AttachLeg(pair->b_, std::move(b), /*accepted=*/false)) return;
  if (std::string error = PairOptionsError(options, worker.options()); !error.empty()) {
    return pair->Close(CloseCause::kError, EINVAL, std::move(error));
  }
  // After both legs: a TLS leg has settled each direction's path by now.
  ApplyPairOptions(options, Clock::now(), pair->a_to_b_, pair->b_to_a_);
  StagePreread(pair->a_to_b_, std::move(a_preread));
  StagePreread(pair->b_to_a_, std::move(b_preread));
  pair->BeginHandshakes();
}

void Pair::StartWithBackend(Worker& worker, Leg client, const Address& peer, SSL_CTX* client_tls,
                            const ClientRouting& routing, OnClose on_close) {
  auto* pair = new Pair(worker, std::move(on_close));
  const BackendRoute& route = *routing.fallback;  // every route shares these settings
  pair->engine_owned_fds_ = true;
  pair->routing_ = &routing;
  pair->route_ = &route;
  pair->counters_ = &route.counters->worker(worker.index());
  pair->backend_pending_ = true;
  pair->peer_ = peer;
  pair->idle_timeout_ = route.idle_timeout;
  pair->handshake_timeout_ = route.handshake_timeout;
  // The listener checked them at Listen. A TLS leg attached later only
  // moves a direction to copy, which a filtered one does already.
  ApplyPairOptions(*routing.pair_options, Clock::now(), pair->a_to_b_, pair->b_to_a_);
  if (client_tls != nullptr) {
    client.ssl = NewServerSsl(client_tls, client.fd.get());
    if (client.ssl == nullptr) {
      // Never fall back to relaying a TLS client's bytes as if they were plain.
      return pair->Close(CloseCause::kError, ENOMEM, "leg A: cannot create its TLS session");
    }
  }
  if (!pair->AttachLeg(pair->a_, std::move(client), /*accepted=*/true)) return;
  pair->BeginPreamble();
}

bool Pair::AttachLeg(PairLeg& leg, Leg&& from, bool accepted) {
  leg.fd = std::move(from.fd);
  const char* name = &leg == &a_ ? "A" : "B";
  if (from.ssl != nullptr) {
    SetStreamModes(from.ssl);  // an embedder's SSL may come from a bare SSL_CTX
    leg.tls = std::make_unique<TlsTransport>(from.ssl, leg.watch, worker_.env().sys);
    // No kernel TLS here: a TLS leg's bytes pass through user space both ways.
    a_to_b_.path = b_to_a_.path = Path::kCopy;
    a_to_b_.auto_splice = b_to_a_.auto_splice = false;
  }
  if (!leg.fd.valid()) {
    Close(CloseCause::kError, EBADF, std::string("leg ") + name + ": no file descriptor");
    return false;
  }
  if (!accepted) {
    // Embedders may hand over blocking sockets; the loop needs non-blocking.
    int flags = ::fcntl(leg.fd.get(), F_GETFL);
    if (flags >= 0 && !(flags & O_NONBLOCK)) ::fcntl(leg.fd.get(), F_SETFL, flags | O_NONBLOCK);
    // Small request/response traffic must not wait on delayed ACKs.
    (void)SetNoDelay(leg.fd.get());
  }
  Status st = leg.watch.Register(worker_.loop(), leg.fd.get(), this);
  if (!st.ok()) {
    Close(CloseCause::kError, st.error().code().value(),
          std::string("leg ") + name + ": " + st.error().message());
    return false;
  }
  return true;
}

void Pair::BeginHandshakes() {
  if ((a_.tls && !a_.tls->handshake_done()) || (b_.tls && !b_.tls->handshake_done())) {
    state_ = State::kHandshaking;
    worker_.loop().ArmTimer(timer_, handshake_timeout_);
    RunHandshakes();
    return;
  }
  HandshakesDone();
}

// Advances every unfinished handshake that can make progress. Returns false
// when the pair closed.
bool Pair::RunHandshakes() {
  bool all_done = true;
  for (PairLeg* leg : {&a_, &b_}) {
    if (!leg->tls || leg->tls->handshake_done()) continue;
    if (leg->tls->HandshakeReady()) {
      IoResult r = leg->tls->Handshake();
      if (r.status == IoStatus::kError) {
        Fail(leg == &a_ ? "A" : "B", "TLS handshake", r.err, leg->tls->error_detail());
        return false;
      }
      if (counters_ && leg->tls->handshake_done()) {
        (leg == &a_ ? counters_->client_tls_handshakes : counters_->backend_tls_handshakes).Add();
      }
    }
    all_done = all_done && leg->tls->handshake_done();
  }
  if (all_done) {
    worker_.loop().CancelTimer(timer_);
    HandshakesDone();
  }
  return true;
}

// Every leg present has finished its handshake: a listener pair connects its
// backend next, any other pair starts relaying.
void Pair::HandshakesDone() {
  if (backend_pending_) return ConnectBackend();
  BeginRelaying();
}

void Pair::BeginRelaying() {
  state_ = State::kRelaying;
  last_active_ = worker_.loop().now();
  if (idle_timeout_ > Duration::zero()) worker_.loop().ArmTimer(timer_, idle_timeout_);
  Run();
}

void Pair::OnFdEvent(FdWatch& watch, uint32_t events) {
  if (state_ == State::kPreamble) return RunPreamble();  // only the client is registered
  if (state_ == State::kSendingProxy && &watch == &b_.watch) return SendProxy();
  if (state_ == State::kConnecting || state_ == State::kSendingProxy) {
    // The client may hang up while its backend is being connected.
    if (&watch == &a_.watch && watch.error()) {
      int err = SocketError(a_.fd.get());
      Fail("A", "while connecting the backend", err ? err : ECONNRESET, {});
    }
    return;
  }
  Run();
  // A reset on a leg whose incoming direction is already finished shows up
  // only as EPOLLERR: no pump reads that leg any more. (EPOLLHUP alone is
  // the normal end of a fully shut socket and costs no getsockopt.) Not on
  // a TLS leg whose peer already ended without close_notify: its kernel
  // resets when OpenSSL's alert for that EOF reaches the closed socket, which
  // says nothing new, and the pair finishes as after any truncation (bytes
  // towards it are discarded, the other direction is delivered in full).
  PairLeg& leg = &watch == &a_.watch ? a_ : b_;
  if ((events & EPOLLERR) && state_ != State::kClosed && !(leg.tls && leg.tls->truncated())) {
    int err = SocketError(watch.fd());
    if (err != 0) Fail(&leg == &a_ ? "A" : "B", "socket", err, {});
  }
}

void Pair::OnTimer(Timer& timer) {
  if (&timer == &rate_timer_) return OnRateTimer();
  EventLoop& loop = worker_.loop();
  if (state_ == State::kPreamble) {
    Close(CloseCause::kTimeout, ETIMEDOUT,
          route_->detail_prefix + "preamble: " + preamble_->waiting_for() +
              " not complete within " + Milliseconds(routing_->preamble.timeout));
    return;
  }
  if (state_ == State::kSendingProxy) {
    Close(CloseCause::kTimeout, ETIMEDOUT,
          route_->detail_prefix + "leg B: PROXY header not written within connect_timeout");
    return;
  }
  if (state_ == State::kHandshaking) {
    const char* leg = a_.tls && !a_.tls->handshake_done() ? "A" : "B";
    Close(CloseCause::kTimeout, ETIMEDOUT,
          std::string("leg ") + leg + " TLS handshake not finished within " +
              std::to_string(std::chrono::duration_cast<milliseconds>(handshake_timeout_).count()) +
              " ms");
    return;
  }
  // The idle timer is not re-armed on every byte (that would be a wheel
  // operation per read); it checks the last activity when it fires instead.
  // A direction its rate limit paused is not idle: its source had bytes to
  // read (the pump pauses only a readable source) and the pair itself holds
  // them back, so a limit slower than the idle timeout must not close it.
  // Nor is a leg whose bytes are on their way through the loop's ring (a
  // receive queued this turn, perhaps by the rate timer that just fired).
  if (a_to_b_.rate_paused || b_to_a_.rate_paused || a_.io().receiving_now() ||
      b_.io().receiving_now()) {
    last_active_ = loop.now();
  }
  Duration idle = idle_timeout_;
  Duration quiet = loop.now() - last_active_;
  if (quiet >= idle) {
    Close(CloseCause::kTimeout, ETIMEDOUT, "idle for " +
          std::to_string(std::chrono::duration_cast<milliseconds>(quiet).count()) + " ms");
    return;
  }
  loop.ArmTimer(timer_, idle - quiet);
}

void Pair::Fail(const char* leg_name, const char* what, int err, const std::string& detail) {
  std::string message = std::string("leg ") + leg_name + " " + what + ": ";
  message += detail.empty() ? std::strerror(err) : detail;
  if (PeerLeftWithoutCloseNotify(leg_name[0] == 'A' ? a_ : b_, err)) {
    return Close(CloseCause::kTruncated, err,
                 std::string("leg ") + leg_name + ": TLS peer closed without close_notify (" +
                     message + ")");
  }
  Close(IsReset(err) ? CloseCause::kReset : CloseCause::kError, err, std::move(message));
}

// A TLS peer that goes away without close_notify reaches us as its EOF, or
// as a reset: its kernel answers with RST whenever the socket it closed
// still held unread input (our close_notify, bytes it chose not to read) or
// gets more (OpenSSL's alert after its EOF). Which one comes first is
// timing, not anything the peer meant, so the cause must not depend on it.
// Its EOF ends the pair kTruncated (RunPumps), and a reset after that EOF is
// ignored (OnFdEvent). A reset that comes first is the same departure
// (kTruncated) once nothing was owed to it and nothing of its own is lost:
// the direction towards it has ended with every byte written to its socket,
// and nothing it sent is still in flight. A reset while bytes towards it
// were still in flight, or while the other leg's stream towards it was still
// open, lost data: that stays kReset, and so does one that drops bytes it
// sent.
bool Pair::PeerLeftWithoutCloseNotify(const PairLeg& leg, int err) const {
  if (state_ != State::kRelaying || !leg.tls || !IsReset(err)) return false;
  const bool is_a = &leg == &a_;
  const Direction& from = is_a ? a_to_b_ : b_to_a_;
  const Direction& towards = is_a ? b_to_a_ : a_to_b_;
  return from.in_flight() == 0 && towards.state != DirectionState::kOpen &&
         towards.in_flight() == 0;
}

void Pair::Abort(CloseCause cause, std::string detail) {
  Close(cause, 0, std::move(detail));
}

void Pair::CountUnfinishedHandshakes(CloseCause cause) {
  if (cause == CloseCause::kDrained) return;
  if (a_.tls && !a_.tls->handshake_done()) counters_->client_tls_handshake_failures.Add();
  if (b_.tls && !b_.tls->handshake_done()) counters_->backend_tls_handshake_failures.Add();
}

void Pair::Close(CloseCause cause, int err, std::string detail) {
  if (state_ == State::kClosed) return;
  if (counters_) {
    if (state_ == State::kHandshaking) CountUnfinishedHandshakes(cause);
    counters_->closed[static_cast<size_t>(cause)].Add();
  }
  state_ = State::kClosed;
  EventLoop& loop = worker_.loop();
  loop.UnscheduleReady(this);
  loop.CancelTimer(timer_);
  loop.CancelTimer(rate_timer_);
  connector_.reset();  // cancels a connect in progress
  choice_ = BackendChoice();  // the lease first, then (maybe) its generation
  ReleaseDirection(a_to_b_, worker_.env());
  ReleaseDirection(b_to_a_, worker_.env());
  PairStats result;
  if (a_.tls && a_.tls->handshake_done()) {
    result.tls_version = a_.tls->version();
    result.sni = a_.tls->sni();
  }
  // A truncation the peer showed by a reset (err set) is still passed on as
  // one: the other peer cannot tell a careless close from an abort in the
  // middle of its stream, and must not take a cut-off upload as complete.
  bool clean = cause == CloseCause::kDone || (cause == CloseCause::kTruncated && err == 0);
  for (PairLeg* leg : {&a_, &b_}) {
    // Sockets the engine made itself (accepted, connected) have no other
    // descriptor: closing them leaves epoll without an EPOLL_CTL_DEL. An
    // embedder's fds may be dup'ed, so they are unregistered explicitly.
    if (engine_owned_fds_) {
      leg->watch.UnregisterForClose();
    } else {
      leg->watch.Unregister();
    }
    leg->tls.reset();
    // An aborted pair resets both peers, so a reset propagates as a reset.
    if (!clean && leg->fd.valid()) (void)SetLingerZero(leg->fd.get());
    // On io_uring the close is queued behind this leg's last send (and
    // batched with the turn's other requests); on epoll it is close(2).
    loop.CloseFd(std::move(leg->fd));
  }

  worker_.Forget(this);

  result.a_to_b = a_to_b_.bytes;
  result.b_to_a = b_to_a_.bytes;
  result.cause = cause;
  result.error = err;
  result.detail = std::move(detail);
  result.age = loop.now() - started_;
  result.worker = worker_.index();
  result.backend = backend_address_;
  result.client = peer_;
  if (on_close_) on_close_(result);
  worker_.WakeBufferWaitersIfFree();
  loop.DeferDelete(std::unique_ptr<Deferrable>(this));
}

}  // namespace zrelay
