// Pair, listener pairs' way to their backend: the client's preamble (PROXY
// header, ClientHello), the backend connect with its retries, and the PROXY
// header written to the backend. The rest of Pair is in pair.cc (setup,
// handshakes, close) and pair_relaying.cc (the pumps).
#include "relay/pair.h"

#include <algorithm>
#include <cerrno>
#include <utility>

#include "engine/socket.h"
#include "relay/proxy_protocol.h"
#include "relay/worker.h"
#include "ssl/tls_context.h"

namespace zrelay {

bool ClientRouting::TrustsProxyFrom(const Address& peer) const {
  if (proxy_from.empty()) return true;
  return std::any_of(proxy_from.begin(), proxy_from.end(),
                     [&](const CidrBlock& block) { return block.Contains(peer); });
}

const BackendRoute& ClientRouting::RouteFor(const std::string& server_name) const {
  const std::optional<size_t> route = sni_router.Match(server_name);
  return route ? *routes[*route] : *fallback;
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

}  // namespace zrelay
