#include "relay/relay_listener.h"

#include <cerrno>
#include <iterator>
#include <utility>

#include "relay/connection_impl.h"

namespace zrelay {

RelayListener::RelayListener(std::vector<std::unique_ptr<Worker>>& workers, ListenOptions options,
                             const EngineOptions& engine,
                             std::shared_ptr<ListenerCounters> counters)
    : EngineListener(std::move(options), std::move(counters)), workers_(workers) {
  if (options_.tls != nullptr) tls_refs_.push_back(TlsContext::Share(options_.tls));
  handshake_timeout_ = options_.handshake_timeout.value_or(engine.handshake_timeout);
  // A listener with on_accept connects no backend: it has no pool.
  if (options_.on_accept) return;
  groups_.push_back(std::make_unique<BackendGroup>(std::string(), options_.backends,
                                                   options_.balance, options_, engine, *counters_));
  for (size_t i = 0; i < options_.routes.size(); ++i) {
    const RouteOptions& route = options_.routes[i];
    // An unnamed route goes by its number, as Engine's errors call it.
    std::string name = route.name.empty() ? std::to_string(i + 1) : route.name;
    groups_.push_back(std::make_unique<BackendGroup>(std::move(name), route.backends, route.balance,
                                                     options_, engine, *counters_));
  }
  auto share_backend_tls = [this](const std::vector<BackendOptions>& backends) {
    for (const BackendOptions& backend : backends) {
      if (backend.tls != nullptr) tls_refs_.push_back(TlsContext::Share(backend.tls));
    }
  };
  share_backend_tls(options_.backends);
  for (const RouteOptions& route : options_.routes) share_backend_tls(route.backends);
  routing_.preamble.proxy_protocol = options_.proxy_protocol;
  routing_.preamble.peek_client_hello = options_.route_by == RouteBy::kSni;
  routing_.preamble.timeout = options_.preamble_timeout;
  routing_.proxy_from = options_.proxy_protocol_from;
  routing_.fallback = &groups_.front()->route();
  routing_.pair_options = &options_.pair;
  routing_.sni_router = SniRouter(options_.routes);
  for (size_t i = 1; i < groups_.size(); ++i) routing_.routes.push_back(&groups_[i]->route());
}

Status RelayListener::Start(WorkerPool& pool) {
  for (auto& group : groups_) {
    Status resolved = group->Resolve();
    if (!resolved.ok()) return resolved;
  }

  // Bound first and stored, then accepting: OnPairClosed needs each
  // address's listener from the first client on.
  std::vector<Address> addresses{options_.address};
  addresses.insert(addresses.end(), options_.extra_addresses.begin(),
                   options_.extra_addresses.end());
  for (const Address& address : addresses) {
    ListenerOptions lo;
    lo.address = address;
    lo.backlog = options_.backlog;
    lo.tcp_nodelay = true;  // accepted legs inherit it (Pair skips the setsockopt)
    lo.max_connections = options_.max_connections;
    lo.fd_exhausted_retry = options_.fd_exhausted_retry;
    lo.adopt_sockets = options_.inherited_sockets;  // each address picks its own
    auto acceptor = std::make_unique<AddressAcceptor>(this);
    auto listener = Listener::Bind(pool, lo, acceptor.get());
    if (!listener.ok()) return listener.error();
    acceptor->listener = std::move(listener.value());
    acceptors_.push_back(std::move(acceptor));
  }

  const std::string label = options_.name.empty() ? address().ToString() : options_.name;
  for (auto& group : groups_) group->Start(pool, label);

  for (auto& acceptor : acceptors_) {
    Status st = acceptor->listener->Accept();
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

void RelayListener::Stop() {
  for (auto& acceptor : acceptors_) acceptor->listener->Stop();
  for (auto& group : groups_) group->StopResolving();
}

void RelayListener::Shutdown(WorkerPool& pool) {
  Stop();
  pool.RunOnEach([this](size_t i) {
    if (i != 0) return;
    for (auto& group : groups_) group->StopOnLoop();
  });
}

Result<std::vector<ListeningSocket>> RelayListener::ListeningSockets() const {
  std::vector<ListeningSocket> out;
  for (const auto& acceptor : acceptors_) {
    Result<std::vector<UniqueFd>> fds = acceptor->listener->ExportSockets();
    if (!fds) return fds.error();
    for (UniqueFd& fd : *fds) {
      out.push_back(ListeningSocket{acceptor->listener->local_address(), std::move(fd)});
    }
  }
  return out;
}

std::vector<Address> RelayListener::addresses() const {
  std::vector<Address> out;
  for (const auto& acceptor : acceptors_) out.push_back(acceptor->listener->local_address());
  return out;
}

ListenerStats RelayListener::Stats(size_t worker) const {
  ListenerStats total;
  for (const auto& acceptor : acceptors_) {
    const ListenerStats s = acceptor->listener->Stats(worker);
    total.accepted += s.accepted;
    total.fd_exhausted += s.fd_exhausted;
    total.accept_errors += s.accept_errors;
    total.paused_max_connections += s.paused_max_connections;
  }
  return total;
}

ListenerMetrics RelayListener::Metrics() const {
  ListenerMetrics m;
  m.name = options_.name;
  for (const Address& a : addresses()) m.addresses.push_back(a.ToString());
  m.max_connections = options_.max_connections;
  counters_->Fill(m);
  for (size_t w = 0; w < workers_.size(); ++w) {
    const ListenerStats s = Stats(w);
    m.accept_fd_exhausted_total += s.fd_exhausted;
    m.accept_paused_max_connections_total += s.paused_max_connections;
  }
  for (const auto& group : groups_) {
    std::vector<BackendMetrics> endpoints = group->Metrics();
    m.backends.insert(m.backends.end(), std::make_move_iterator(endpoints.begin()),
                      std::make_move_iterator(endpoints.end()));
  }
  return m;
}

void RelayListener::OnAccept(AddressAcceptor& acceptor, size_t worker, UniqueFd fd,
                             const Address& peer) {
  Worker& w = *workers_[worker];
  w.stats().accepted.Add();
  counters_->worker(worker).accepted.Add();
  AddHold();  // the listener is not retired while accepting
  if (options_.on_accept) return AcceptConnection(acceptor, w, std::move(fd), peer);
  // Holding two pointers, the callback fits std::function's inline
  // buffer: no allocation per client.
  Pair::StartWithBackend(
      w, Leg{std::move(fd), nullptr}, peer, options_.tls, routing_,
      [this, a = &acceptor](const PairStats& stats) { OnPairClosed(*a, stats); });
}

void RelayListener::AcceptConnection(AddressAcceptor& acceptor, Worker& worker, UniqueFd fd,
                                     const Address& peer) {
  ListenerWorkerCounters& counters = counters_->worker(worker.index());
  // The client's slot and our hold last until its Connection, or the pair
  // it became, is gone.
  ListenerTie tie{&counters, [this, a = &acceptor] {
                    a->listener->Release();
                    DropHold();  // last: the listener may be destroyed from here on
                  }};
  ConnectionPtr client =
      ConnectionImpl::Adopt(worker, std::move(fd), peer, /*accepted=*/true, std::move(tie));
  if (options_.tls == nullptr) return options_.on_accept(std::move(client));
  Connection& c = *client;
  c.SetTimeout(handshake_timeout_);
  c.StartTls(options_.tls, TlsRole::kServer,
             [this, &counters, client = std::move(client)](Status status) mutable {
               if (!status.ok()) {
                 counters.client_tls_handshake_failures.Add();
                 return;  // dropping the client closes it
               }
               counters.client_tls_handshakes.Add();
               client->SetTimeout(Duration::zero());
               options_.on_accept(std::move(client));
             });
}

void RelayListener::OnPairClosed(AddressAcceptor& acceptor, const PairStats& stats) {
  // EMFILE/ENFILE can only come from the backend's socket(): this worker
  // is out of fds. Accepting more now would reset them one by one, so it
  // backs off like an accept that ran out of fds.
  if (stats.cause == CloseCause::kConnectFailed &&
      (stats.error == EMFILE || stats.error == ENFILE)) {
    workers_[stats.worker]->stats().backend_fd_exhausted.Add();
    counters_->worker(stats.worker).backend_fd_exhausted.Add();
    acceptor.listener->BackOff(stats.worker);
  }
  acceptor.listener->Release();
  if (options_.on_close) options_.on_close(stats);
  DropHold();  // last: the listener may be destroyed from here on
}

}  // namespace zrelay
