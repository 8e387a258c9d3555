#include "relay/pair.h"

#include <fcntl.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "engine/socket.h"
#include "relay/proxy_protocol.h"
#include "relay/worker.h"
#include "ssl/tls_context.h"

namespace zrelay {
namespace {

bool IsReset(int err) { return err == ECONNRESET || err == EPIPE || err == ECONNABORTED; }

std::string Milliseconds(Duration d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count()) + " ms";
}

}  // namespace

bool ClientRouting::TrustsProxyFrom(const Address& peer) const {
  if (proxy_from.empty()) return true;
  return std::any_of(proxy_from.begin(), proxy_from.end(),
                     [&](const CidrBlock& block) { return block.Contains(peer); });
}

const BackendRoute& ClientRouting::RouteFor(const std::string& server_name) const {
  const std::optional<size_t> route = sni_router.Match(server_name);
  return route ? *routes[*route] : *fallback;
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

void Pair::Start(Worker& worker, Leg a, Leg b, OnClose on_close) {
  auto* pair = new Pair(worker, std::move(on_close));
  if (!pair->AttachLeg(pair->a_, std::move(a), /*accepted=*/false)) {
    TlsStream unused_b(b.ssl);  // the pair is gone; B's SSL (if any) is ours to free
    return;
  }
  if (!pair->AttachLeg(pair->b_, std::move(b), /*accepted=*/false)) return;
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

void Pair::BeginPreamble() {
  const PreambleOptions& preamble = routing_->preamble;
  if (preamble.proxy_protocol && !routing_->TrustsProxyFrom(peer_)) {
    return Close(CloseCause::kError, EACCES,
                 route_->detail_prefix + "PROXY header from untrusted peer " + peer_.ToString());
  }
  if (!preamble.any()) {
    // A TLS client proves it speaks TLS before it costs a backend
    // connection; a plain one is connected at once.
    return BeginHandshakes();
  }
  state_ = State::kPreamble;
  preamble_ = std::make_unique<ClientPreamble>(preamble);
  worker_.loop().ArmTimer(timer_, preamble.timeout);
  RunPreamble();
}

void Pair::RunPreamble() {
  switch (preamble_->Advance(a_.watch)) {
    case ClientPreamble::Progress::kWaiting:
      return;
    case ClientPreamble::Progress::kFailed: {
      const ClientPreamble::Failure& failure = preamble_->failure();
      return Close(failure.cause, failure.err, route_->detail_prefix + failure.detail);
    }
    case ClientPreamble::Progress::kDone:
      break;
  }
  worker_.loop().CancelTimer(timer_);
  if (const std::optional<ProxyHeader>& header = preamble_->proxy_header();
      header && !header->local) {
    peer_ = header->source;
    client_destination_ = header->destination;
  }
  route_ = &routing_->RouteFor(preamble_->server_name());
  preamble_.reset();
  BeginHandshakes();
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

void Pair::ConnectBackend() {
  state_ = State::kConnecting;
  EventLoop& loop = worker_.loop();
  BackendPool& pool = *route_->pool;
  if (!choice_.generation) {  // the first try
    std::optional<BackendChoice> choice = pool.Pick(worker_.index(), peer_);
    if (!choice) {
      worker_.stats().no_healthy_backend.Add();
      counters_->no_healthy_backend.Add();
      return Close(CloseCause::kConnectFailed, 0, route_->detail_prefix + "no healthy backend");
    }
    choice_ = std::move(*choice);
    connect_deadline_ = loop.now() + route_->connect_timeout;
    tries_left_ = route_->retries;
  }
  backend_address_ = choice_.endpoint().address;
  // The tries share connect_timeout: this one gets an equal part of what is
  // left among the tries still possible (the last one gets all of it), so a
  // backend that swallows SYNs leaves time to try another one.
  Duration timeout = connect_deadline_ - loop.now();
  if (route_->retries > 0) tried_.push_back(choice_.index);
  if (tries_left_ > 0) {
    const size_t others = BackendPool::HealthyUntried(*choice_.generation, tried_);
    timeout /= 1 + std::min<size_t>(static_cast<size_t>(tries_left_), others);
  }
  if (!connector_) connector_ = std::make_unique<Connector>(loop);
  // The clock itself, not the loop's turn time: the histogram's first
  // buckets are a fraction of a millisecond wide.
  connect_started_ = Clock::now();
  connector_->Start(backend_address_, timeout, b_.watch, this);
}

bool Pair::RetryBackend() {
  if (tries_left_ <= 0 || worker_.loop().now() >= connect_deadline_) return false;
  std::optional<BackendChoice> next = route_->pool->PickAgain(choice_.generation, tried_);
  if (!next) return false;
  --tries_left_;
  worker_.stats().backend_retries.Add();
  counters_->backend_retries.Add();
  choice_ = std::move(*next);
  ConnectBackend();
  return true;
}

void Pair::BeginRelaying() {
  state_ = State::kRelaying;
  last_active_ = worker_.loop().now();
  if (idle_timeout_ > Duration::zero()) worker_.loop().ArmTimer(timer_, idle_timeout_);
  Run();
}

void Pair::OnConnect(Result<UniqueFd> fd) {
  if (!fd.ok()) {
    worker_.stats().connect_failures.Add();
    counters_->connect_failures.Add();
    const Error& error = fd.error();
    const int err = error.code().value();
    // Out of fds here is this process's trouble, not the endpoint's: it
    // counts against no backend, and the listener backs off (OnPairClosed).
    const bool local = err == EMFILE || err == ENFILE;
    if (!local) {
      route_->pool->ConnectFailed(choice_, error);
      choice_.lease.Release();
      if (RetryBackend()) return;
    }
    std::string detail = route_->detail_prefix + error.message();
    if (tried_.size() > 1) {
      detail += " (" + std::to_string(tried_.size()) + " endpoints tried)";
    }
    Close(CloseCause::kConnectFailed, err, std::move(detail));
    return;
  }
  route_->pool->ConnectSucceeded(choice_, Clock::now() - connect_started_);
  b_.fd = std::move(fd.value());
  b_.watch.set_handler(this);
  (void)SetNoDelay(b_.fd.get());
  backend_pending_ = false;
  const BackendOptions::SendProxy send_proxy = choice_.endpoint().send_proxy;
  if (send_proxy != BackendOptions::SendProxy::kNone) return BeginSendingProxy(send_proxy);
  BackendReady();
}

void Pair::BeginSendingProxy(BackendOptions::SendProxy version) {
  state_ = State::kSendingProxy;
  Address destination;
  if (client_destination_) {
    destination = *client_destination_;
  } else if (Result<Address> local = LocalAddress(a_.fd.get()); local.ok()) {
    destination = *local;
  }  // else: unknown, so the header says UNKNOWN / LOCAL (relay/proxy_protocol.h)
  proxy_out_ = version == BackendOptions::SendProxy::kV1 ? ProxyHeaderV1(peer_, destination)
                                                         : ProxyHeaderV2(peer_, destination);
  // A fresh socket's send buffer takes the header at once; should it not,
  // the rest waits for the socket to be writable, within what is left of
  // connect_timeout, and nothing else is written meanwhile.
  const Duration left = connect_deadline_ - worker_.loop().now();
  worker_.loop().ArmTimer(timer_, std::max<Duration>(left, milliseconds(1)));
  SendProxy();
}

void Pair::SendProxy() {
  while (!proxy_out_.empty()) {
    const SysResult r = worker_.env().sys.Send(b_.fd.get(), proxy_out_.data(), proxy_out_.size());
    if (r.would_block()) {
      b_.watch.clear_writable();
      return;
    }
    if (!r.ok()) {
      if (r.err == EINTR) continue;
      return Fail("B", "PROXY header write", r.err, {});
    }
    proxy_out_.erase(0, static_cast<size_t>(r.rc));
  }
  worker_.loop().CancelTimer(timer_);
  BackendReady();
}

// The backend is connected, and has its PROXY header when it asked for one.
void Pair::BackendReady() {
  const Endpoint& backend = choice_.endpoint();
  if (backend.tls != nullptr) {
    SSL* ssl = NewClientSsl(backend.tls, b_.fd.get(), backend.sni);
    if (ssl == nullptr) {
      return Close(CloseCause::kError, ENOMEM,
                   "leg B: cannot create its TLS session (SNI '" + backend.sni + "')");
    }
    b_.tls = std::make_unique<TlsTransport>(ssl, b_.watch, worker_.env().sys);
    a_to_b_.path = b_to_a_.path = Path::kCopy;
    a_to_b_.auto_splice = b_to_a_.auto_splice = false;
  }
  BeginHandshakes();
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
  // the normal end of a fully shut socket and costs no getsockopt.)
  if ((events & EPOLLERR) && state_ != State::kClosed) {
    int err = SocketError(watch.fd());
    if (err != 0) Fail(&watch == &a_.watch ? "A" : "B", "socket", err, {});
  }
}

void Pair::OnTimer(Timer& /*timer*/) {
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
  Duration idle = idle_timeout_;
  Duration quiet = loop.now() - last_active_;
  if (quiet >= idle) {
    Close(CloseCause::kTimeout, ETIMEDOUT, "idle for " +
          std::to_string(std::chrono::duration_cast<milliseconds>(quiet).count()) + " ms");
    return;
  }
  loop.ArmTimer(timer_, idle - quiet);
}

void Pair::Run() {
  if (state_ == State::kHandshaking && !RunHandshakes()) return;
  if (state_ != State::kRelaying) return;
  RunPumps();
  // A ring this pair gave back may be what another pair is waiting for.
  worker_.WakeBufferWaitersIfFree();
}

void Pair::RunPumps() {
  size_t budget = worker_.options().budget_per_event;
  uint64_t ab_before = a_to_b_.bytes;
  uint64_t ba_before = b_to_a_.bytes;
  // The pump counts the worker's spliced bytes as it delivers them; what
  // they grow by in this call is this pair's.
  uint64_t spliced_before = worker_.stats().bytes_spliced.Get();

  PumpResult ab = Move(a_to_b_, a_, b_, b_to_a_, budget);
  PumpResult ba{};
  if (ab.outcome != PumpOutcome::kError) ba = Move(b_to_a_, b_, a_, a_to_b_, budget);

  WorkerCounters& stats = worker_.stats();
  if (a_to_b_.bytes != ab_before || b_to_a_.bytes != ba_before) {
    const uint64_t ab_moved = a_to_b_.bytes - ab_before;
    const uint64_t ba_moved = b_to_a_.bytes - ba_before;
    if (counters_) CountBytes(ab_moved, ba_moved, spliced_before);
    stats.bytes_a_to_b.Add(ab_moved);
    stats.bytes_b_to_a.Add(ba_moved);
    last_active_ = worker_.loop().now();
  }

  if (ab.outcome == PumpOutcome::kError) {
    PairLeg& leg = ab.on_source ? a_ : b_;
    return Fail(ab.on_source ? "A" : "B", ab.on_source ? "read" : "write", ab.err,
                leg.io().error_detail());
  }
  if (ba.outcome == PumpOutcome::kError) {
    PairLeg& leg = ba.on_source ? b_ : a_;
    return Fail(ba.on_source ? "B" : "A", ba.on_source ? "read" : "write", ba.err,
                leg.io().error_detail());
  }
  if (ab.outcome == PumpOutcome::kDone && ba.outcome == PumpOutcome::kDone) {
    for (PairLeg* leg : {&a_, &b_}) {
      if (leg->tls && leg->tls->truncated()) {
        return Close(CloseCause::kTruncated, 0,
                     std::string("leg ") + (leg == &a_ ? "A" : "B") +
                         ": TLS peer closed without close_notify");
      }
    }
    return Close(CloseCause::kDone, 0, {});
  }
  if (ab.outcome == PumpOutcome::kMore || ba.outcome == PumpOutcome::kMore) {
    worker_.loop().ScheduleReady(this);
  }
  if (ab.outcome == PumpOutcome::kNoBuffer || ba.outcome == PumpOutcome::kNoBuffer) {
    worker_.WaitForBuffer(this);
  }
}

void Pair::CountBytes(uint64_t a_to_b, uint64_t b_to_a, uint64_t spliced_before) {
  const uint64_t spliced = worker_.stats().bytes_spliced.Get() - spliced_before;
  counters_->bytes_client_to_backend.Add(a_to_b);
  counters_->bytes_backend_to_client.Add(b_to_a);
  counters_->bytes_spliced.Add(spliced);
  counters_->bytes_copied.Add(a_to_b + b_to_a - spliced);
}

// Runs `dir` (from `src` to `dst`; `other` is the opposite direction) with
// the pump, until its destination is a TLS leg that ended without
// close_notify. OpenSSL makes such a session fatal: every later write fails
// ("connection already failed"). That ends what this direction can deliver,
// not the pair: the truncating peer's own bytes still go through, and the
// pair ends as kTruncated. From then on this direction discards.
PumpResult Pair::Move(Direction& dir, PairLeg& src, PairLeg& dst, const Direction& other,
                      size_t budget) {
  bool& discarding = &dir == &a_to_b_ ? a_to_b_discards_ : b_to_a_discards_;
  if (!discarding) {
    PumpResult r = Pump(dir, {src.watch, src.io()}, {dst.watch, dst.io()}, worker_.env(), budget,
                        other.state == DirectionState::kDone);
    if (r.outcome != PumpOutcome::kError || r.on_source || !dst.io().truncated()) return r;
    discarding = true;
    if (dir.ring) dir.ring->Clear();  // undeliverable
  }
  return Discard(dir, src, dst, other, budget);
}

// Reads what `src` still sends and drops it, until its EOF; then ends the
// direction as the pump does (FIN to `dst`). It keeps reading because
// closing a socket with unread input sends RST, and an RST throws away
// whatever is still queued towards that peer: the other direction's last
// bytes. Discarded bytes are not counted as delivered, nor as activity.
PumpResult Pair::Discard(Direction& dir, PairLeg& src, PairLeg& dst, const Direction& other,
                         size_t budget) {
  PumpEnv& env = worker_.env();
  size_t read_total = 0;
  while (dir.state == DirectionState::kOpen && src.io().ReadReady()) {
    if (read_total >= budget) return {PumpOutcome::kMore};
    if (!dir.ring) dir.ring = env.buffers.Take();
    if (!dir.ring) return {PumpOutcome::kNoBuffer};
    dir.ring->Clear();
    IoResult r = src.io().Read(*dir.ring);
    if (r.status == IoStatus::kOk) read_total += r.bytes;
    if (r.status == IoStatus::kEof) dir.state = DirectionState::kDraining;
    if (r.status == IoStatus::kError) return {PumpOutcome::kError, r.err, /*on_source=*/true};
    if (r.status == IoStatus::kWouldBlock) break;
  }
  ReleaseDirection(dir, env);  // nothing is kept, so an idle direction holds no ring
  if (dir.state == DirectionState::kOpen) return {PumpOutcome::kIdle};
  // Nothing in flight: the pump only ends the direction.
  return Pump(dir, {src.watch, src.io()}, {dst.watch, dst.io()}, env, budget,
              other.state == DirectionState::kDone);
}

void Pair::Fail(const char* leg_name, const char* what, int err, const std::string& detail) {
  std::string message = std::string("leg ") + leg_name + " " + what + ": ";
  message += detail.empty() ? std::strerror(err) : detail;
  Close(IsReset(err) ? CloseCause::kReset : CloseCause::kError, err, std::move(message));
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
  connector_.reset();  // cancels a connect in progress
  choice_ = BackendChoice();  // the lease first, then (maybe) its generation
  ReleaseDirection(a_to_b_, worker_.env());
  ReleaseDirection(b_to_a_, worker_.env());
  PairStats result;
  if (a_.tls && a_.tls->handshake_done()) {
    result.tls_version = a_.tls->version();
    result.sni = a_.tls->sni();
  }
  bool clean = cause == CloseCause::kDone || cause == CloseCause::kTruncated;
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
    leg->fd.Reset();
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
