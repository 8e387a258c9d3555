#include "relay/udp_lane.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

#include "engine/socket.h"

namespace zrelay {
namespace {

// recvmmsg slots per call, and calls per readiness event before the rest
// waits for the next turn (fairness with the worker's other sockets).
constexpr size_t kBatch = 32;
constexpr int kRoundsPerEvent = 8;

// What a connected UDP socket reports for an ICMP error from its peer.
bool IsUnreachable(int error) {
  return error == ECONNREFUSED || error == EHOSTUNREACH || error == ENETUNREACH ||
         error == EHOSTDOWN;
}

// A socket or connect that failed for want of something of this host's (no
// fd, no ephemeral port, no memory): no fault of the endpoint's.
bool OutOfLocalResources(int error) {
  return error == EMFILE || error == ENFILE || error == EAGAIN || error == EADDRNOTAVAIL ||
         error == ENOBUFS || error == ENOMEM;
}

// "30 s", "1500 ms".
std::string Span(Duration d) {
  const auto ms = std::chrono::duration_cast<milliseconds>(d).count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

}  // namespace

struct UdpLane::Socket final : FdHandler, ReadyHandler {
  Socket(UdpLane& l, uint32_t i, UniqueFd f, Address a)
      : lane(l),
        index(i),
        fd(std::move(f)),
        bound(std::move(a)),
        wildcard(IsWildcard(bound)),
        replies(kBatch) {}

  void OnFdEvent(FdWatch& /*watch*/, uint32_t /*events*/) override { lane.ReadClients(*this); }
  // After the turn's events: the replies its flows queued leave together,
  // then the clients' datagrams a spent budget left waiting are read.
  void OnReady() override {
    lane.FlushReplies(*this);
    if (more_to_read) lane.ReadClients(*this);
  }

  UdpLane& lane;
  const uint32_t index;
  UniqueFd fd;
  const Address bound;
  // Bound to 0.0.0.0 or [::]: each reply names the address its flow's
  // client sent to, or the kernel would pick one by route.
  const bool wildcard;
  FdWatch watch;
  UdpSendBatch replies;
  uint32_t drops_seen = 0;  // the socket's SO_RXQ_OVFL count, as last counted
  bool more_to_read = false;
};

struct UdpLane::Flow final : FdHandler, TimerHandler, ReadyHandler, Deferrable {
  Flow(UdpLane& l, Socket& s, const UdpFlowKey& k, const UdpDatagram& d, TimePoint now)
      : lane(l), socket(s), key(k), local(d.local), idle(this), started(now), last(now) {
    std::memcpy(&client, d.peer, d.peer_length);
    client_length = d.peer_length;
  }

  void OnFdEvent(FdWatch& /*watch*/, uint32_t /*events*/) override { lane.ReadBackend(*this); }
  void OnTimer(Timer& /*timer*/) override { lane.OnIdle(*this); }
  void OnReady() override { lane.ReadBackend(*this); }  // a budget left replies waiting

  UdpLane& lane;
  Socket& socket;
  const UdpFlowKey key;
  struct sockaddr_storage client {};
  socklen_t client_length = 0;
  const UdpLocal local;  // where the client sent to: replies leave from there
  UniqueFd fd;           // connected to the endpoint
  FdWatch watch;
  Timer idle;
  BackendChoice choice;
  std::vector<size_t> tried;  // endpoints of choice.generation that failed it
  // Its first datagram, kept while the endpoint has not answered and a
  // retry may have to send it to another one (ListenOptions::retries).
  std::string first;
  bool answered = false;
  bool closed = false;
  TimePoint started;
  TimePoint last;  // its last datagram, either way
  uint64_t bytes_to_backend = 0;
  uint64_t bytes_to_client = 0;
  uint64_t datagrams_to_backend = 0;
  uint64_t datagrams_to_client = 0;
};

UdpLane::UdpLane(Worker& worker, const UdpRoute& route, std::vector<UniqueFd> sockets,
                 std::vector<Address> bound)
    : worker_(&worker),
      loop_(worker.loop()),
      route_(route),
      counters_(route.counters->worker(worker.index())),
      flows_(64, UdpFlowKeyHash{std::random_device{}() * 0x9e3779b97f4a7c15ull}),
      from_clients_(kBatch),
      from_backend_(kBatch),
      to_backend_(kBatch) {
  for (size_t i = 0; i < sockets.size(); ++i) {
    sockets_.push_back(std::make_unique<Socket>(*this, static_cast<uint32_t>(i),
                                                std::move(sockets[i]), std::move(bound[i])));
  }
}

UdpLane::~UdpLane() = default;

Status UdpLane::Start() {
  for (auto& s : sockets_) {
    s->drops_seen = UdpDropCount(s->fd.get());
    Status st = s->watch.Register(loop_, s->fd.get(), s.get());
    if (!st) return st;
  }
  worker_->AddTenant(this);
  return Status::Ok();
}

void UdpLane::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& s : sockets_) {
    s->watch.Unregister();
    s->more_to_read = false;
  }
  const Duration linger = FlowTimeout();
  for (auto& [key, flow] : flows_) loop_.ArmTimer(flow->idle, linger);
  FinishIfIdle();
}

Result<std::vector<ListeningSocket>> UdpLane::ExportSockets() const {
  std::vector<ListeningSocket> out;
  for (const auto& s : sockets_) {
    UniqueFd fd(::fcntl(s->fd.get(), F_DUPFD_CLOEXEC, 0));
    if (!fd) return Error::FromErrno(errno, "export the udp socket on " + s->bound.ToString());
    out.push_back(ListeningSocket{s->bound, std::move(fd)});
  }
  return out;
}

Duration UdpLane::FlowTimeout() const {
  return stopped_ ? std::min(route_.idle_timeout, kStoppedLinger) : route_.idle_timeout;
}

void UdpLane::ReadClients(Socket& socket) {
  socket.more_to_read = false;
  WorkerCounters& stats = worker_->stats();
  for (int round = 0; round < kRoundsPerEvent; ++round) {
    Result<size_t> got = from_clients_.Receive(socket.fd.get());
    // An unconnected socket hears of no peer's ICMP error: any error here
    // is the socket's own (ENOMEM), and the next datagram tries again.
    const size_t n = got ? *got : 0;
    CountDrops(socket, from_clients_);
    Flow* pending = nullptr;  // the flow whose datagrams to_backend_ holds
    for (size_t i = 0; i < n; ++i) {
      const UdpDatagram d = from_clients_.datagram(i);
      Flow* flow = FlowFor(socket, d);
      if (flow != pending && pending != nullptr) SendToBackend(*pending);
      pending = flow;
      if (flow == nullptr) continue;
      if (to_backend_.full()) SendToBackend(*flow);
      to_backend_.Add(d.data, d.size, d.segment_size, nullptr, 0, nullptr);
      const size_t datagrams = d.count();
      stats.udp_datagrams_client_to_backend.Add(datagrams);
      stats.udp_bytes_client_to_backend.Add(d.size);
      counters_.datagrams_client_to_backend.Add(datagrams);
      counters_.bytes_client_to_backend.Add(d.size);
      flow->bytes_to_backend += d.size;
      flow->datagrams_to_backend += datagrams;
      flow->last = loop_.now();
      if (!flow->answered && flow->first.empty() && route_.retries > 0 && d.segment_size == 0) {
        flow->first.assign(d.data, d.size);
      }
    }
    if (pending != nullptr) SendToBackend(*pending);
    if (n < from_clients_.slots()) {
      socket.watch.clear_readable();
      return;
    }
  }
  // The budget is spent and more may be waiting: the rest next turn.
  socket.more_to_read = true;
  loop_.ScheduleReady(&socket);
}

UdpLane::Flow* UdpLane::FlowFor(Socket& socket, const UdpDatagram& d) {
  const UdpFlowKey key = UdpFlowKey::Of(socket.index, d.peer);
  auto it = flows_.find(key);
  if (it != flows_.end()) return it->second.get();

  WorkerCounters& stats = worker_->stats();
  if (route_.flows_open->fetch_add(1, std::memory_order_relaxed) >= route_.max_flows) {
    route_.flows_open->fetch_sub(1, std::memory_order_relaxed);
    stats.udp_flow_cap_drops.Add(d.count());
    counters_.udp_flow_cap_drops.Add(d.count());
    return nullptr;
  }
  const Address client(d.peer, d.peer_length);
  std::optional<BackendChoice> choice = route_.pool->Pick(worker_->index(), client);
  if (!choice) {
    route_.flows_open->fetch_sub(1, std::memory_order_relaxed);
    stats.no_healthy_backend.Add();
    counters_.no_healthy_backend.Add();
    return nullptr;
  }
  auto flow = std::make_unique<Flow>(*this, socket, key, d, loop_.now());
  flow->choice = std::move(*choice);
  if (Status st = Connect(*flow); !st) {
    route_.flows_open->fetch_sub(1, std::memory_order_relaxed);
    stats.connect_failures.Add();
    counters_.connect_failures.Add();
    const int error = st.error().code().value();
    if (error == EMFILE || error == ENFILE) {
      stats.backend_fd_exhausted.Add();
      counters_.backend_fd_exhausted.Add();
    } else if (!OutOfLocalResources(error)) {
      route_.pool->ConnectFailed(flow->choice, st.error());
    }
    return nullptr;
  }
  route_.add_hold();
  stats.udp_flows_created.Add();
  stats.udp_flows_open.Add();
  counters_.accepted.Add();
  loop_.ArmTimer(flow->idle, FlowTimeout());
  Flow* raw = flow.get();
  flows_.emplace(key, std::move(flow));
  return raw;
}

Status UdpLane::Connect(Flow& flow) {
  Result<UniqueFd> fd = ConnectUdp(flow.choice.endpoint().address, route_.sockets);
  if (!fd) return fd.error();
  flow.fd = std::move(fd).value();
  Status st = flow.watch.Register(loop_, flow.fd.get(), &flow);
  if (!st) flow.fd.Reset();
  return st;
}

void UdpLane::SendToBackend(Flow& flow) {
  if (flow.closed) return to_backend_.Clear();
  const UdpSendBatch::Outcome out = to_backend_.Flush(flow.fd.get());
  if (out.dropped == 0) return;
  worker_->stats().udp_send_drops.Add(out.dropped);
  counters_.udp_send_drops.Add(out.dropped);
  // A connected socket reports the endpoint's ICMP error on the next send.
  if (IsUnreachable(out.error)) BackendFailed(flow, out.error);
}

void UdpLane::ReadBackend(Flow& flow) {
  if (flow.closed) return;
  if (flow.watch.error()) {
    const int error = SocketError(flow.fd.get());
    if (error != 0) return BackendFailed(flow, error);
  }
  WorkerCounters& stats = worker_->stats();
  Socket& socket = flow.socket;
  for (int round = 0; round < kRoundsPerEvent; ++round) {
    Result<size_t> got = from_backend_.Receive(flow.fd.get());
    if (!got) return BackendFailed(flow, got.error().code().value());
    const size_t n = *got;
    for (size_t i = 0; i < n; ++i) {
      const UdpDatagram d = from_backend_.datagram(i);
      if (socket.replies.full()) FlushReplies(socket);
      socket.replies.Add(d.data, d.size, d.segment_size,
                         reinterpret_cast<const struct sockaddr*>(&flow.client), flow.client_length,
                         socket.wildcard ? &flow.local : nullptr);
      const size_t datagrams = d.count();
      stats.udp_datagrams_backend_to_client.Add(datagrams);
      stats.udp_bytes_backend_to_client.Add(d.size);
      counters_.datagrams_backend_to_client.Add(datagrams);
      counters_.bytes_backend_to_client.Add(d.size);
      flow.bytes_to_client += d.size;
      flow.datagrams_to_client += datagrams;
    }
    if (n > 0) {
      flow.last = loop_.now();
      if (!flow.answered) {
        // Its first answer: the endpoint is alive (it counts as a connect,
        // timed to this first reply), and no retry will need the datagram.
        flow.answered = true;
        std::string().swap(flow.first);
        route_.pool->ConnectSucceeded(flow.choice, loop_.now() - flow.started);
      }
      loop_.ScheduleReady(&socket);  // the replies leave after the turn's events
      // Every datagram answered as often as the endpoint answers one: the
      // flow is done (its replies are queued on the listening socket).
      if (route_.responses > 0 &&
          flow.datagrams_to_client >= flow.datagrams_to_backend * route_.responses) {
        return CloseFlow(flow, CloseCause::kDone, 0, "");
      }
    }
    if (n < from_backend_.slots()) {
      flow.watch.clear_readable();
      return;
    }
  }
  loop_.ScheduleReady(&flow);
}

void UdpLane::BackendFailed(Flow& flow, int error) {
  if (flow.closed) return;
  WorkerCounters& stats = worker_->stats();
  const Error failure = Error::FromErrno(
      error, "udp endpoint " + flow.choice.endpoint().address.ToString() + " unreachable");
  if (IsUnreachable(error)) {
    stats.udp_backend_unreachable.Add();
    counters_.udp_backend_unreachable.Add();
  }
  stats.connect_failures.Add();
  counters_.connect_failures.Add();
  route_.pool->ConnectFailed(flow.choice, failure);
  // Unanswered, with its first datagram kept: another endpoint gets it.
  if (!flow.answered && !flow.first.empty() &&
      flow.tried.size() < static_cast<size_t>(route_.retries)) {
    flow.tried.push_back(flow.choice.index);
    std::optional<BackendChoice> next = route_.pool->PickAgain(flow.choice.generation, flow.tried);
    if (next) {
      flow.watch.UnregisterForClose();
      loop_.CloseFd(std::move(flow.fd));
      flow.choice = std::move(*next);
      stats.backend_retries.Add();
      counters_.backend_retries.Add();
      if (Connect(flow)) {
        if (::send(flow.fd.get(), flow.first.data(), flow.first.size(), MSG_DONTWAIT) >= 0) return;
        return BackendFailed(flow, errno);
      }
    }
  }
  CloseFlow(flow, CloseCause::kConnectFailed, error, failure.message());
}

void UdpLane::FlushReplies(Socket& socket) {
  if (socket.replies.empty() || !socket.fd) return;
  const UdpSendBatch::Outcome out = socket.replies.Flush(socket.fd.get());
  if (out.dropped == 0) return;
  worker_->stats().udp_send_drops.Add(out.dropped);
  counters_.udp_send_drops.Add(out.dropped);
}

void UdpLane::OnIdle(Flow& flow) {
  const TimePoint due = flow.last + FlowTimeout();
  if (loop_.now() < due) return loop_.ArmTimer(flow.idle, due - loop_.now());
  if (stopped_) return CloseFlow(flow, CloseCause::kDone, 0, "");
  CloseFlow(flow, CloseCause::kTimeout, 0, "idle for " + Span(route_.idle_timeout));
}

void UdpLane::CloseFlow(Flow& flow, CloseCause cause, int error, std::string detail) {
  flow.closed = true;
  if (flow.fd) {
    flow.watch.UnregisterForClose();
    loop_.CloseFd(std::move(flow.fd));
  }
  loop_.CancelTimer(flow.idle);
  loop_.UnscheduleReady(&flow);

  PairStats stats;
  stats.a_to_b = flow.bytes_to_backend;
  stats.b_to_a = flow.bytes_to_client;
  stats.cause = cause;
  stats.error = error;
  if (!detail.empty()) stats.detail = route_.detail_prefix + detail;
  stats.age = loop_.now() - flow.started;
  stats.worker = worker_->index();
  stats.backend = flow.choice.endpoint().address;
  stats.client =
      Address(reinterpret_cast<const struct sockaddr*>(&flow.client), flow.client_length);
  // Released now, not when the flow's memory goes at the end of the turn:
  // nothing of the listener's may be touched once its last hold drops.
  flow.choice = BackendChoice{};

  route_.flows_open->fetch_sub(1, std::memory_order_relaxed);
  worker_->stats().udp_flows_open.Sub();
  counters_.closed[static_cast<size_t>(cause)].Add();
  auto node = flows_.extract(flow.key);
  loop_.DeferDelete(std::move(node.mapped()));
  if (*route_.on_close) (*route_.on_close)(stats);
  FinishIfIdle();
  route_.drop_hold();  // last: the listener, this lane with it, may go from here on
}

void UdpLane::CountDrops(Socket& socket, const UdpReceiveBatch& batch) {
  const std::optional<uint32_t> drops = batch.drops();
  if (!drops) return;
  // Unsigned: the kernel's counter wraps at 2^32.
  const uint32_t fresh = *drops - socket.drops_seen;
  socket.drops_seen = *drops;
  if (fresh == 0 || fresh > (1u << 31)) return;
  worker_->stats().udp_receive_drops.Add(fresh);
  counters_.udp_receive_drops.Add(fresh);
}

void UdpLane::FinishIfIdle() {
  if (!stopped_ || !flows_.empty()) return;
  for (auto& s : sockets_) {
    if (!s->fd) continue;
    FlushReplies(*s);
    loop_.UnscheduleReady(s.get());
    loop_.CloseFd(std::move(s->fd));
  }
  if (worker_ != nullptr) worker_->RemoveTenant(this);
}

void UdpLane::AbortAll() {
  while (!flows_.empty()) {
    CloseFlow(*flows_.begin()->second, CloseCause::kDrained, 0, "closed by the engine");
  }
}

void UdpLane::WorkerClosing() {
  for (auto& [key, flow] : flows_) {
    flow->closed = true;
    if (flow->fd) flow->watch.UnregisterForClose();
    loop_.UnscheduleReady(flow.get());
    route_.flows_open->fetch_sub(1, std::memory_order_relaxed);
  }
  flows_.clear();
  for (auto& s : sockets_) {
    s->watch.Unregister();
    loop_.UnscheduleReady(s.get());
  }
  worker_ = nullptr;
}

}  // namespace zrelay
