#include "relay/udp_listener.h"

#include <fcntl.h>

#include <climits>
#include <iterator>
#include <utility>

#include "engine/socket.h"
#include "engine/udp_socket.h"

namespace zrelay {
namespace {

// The sockets of `inherited` bound to `address` (UDP ones only: a TCP
// listener on the same port has sockets of the same address), dup()ed.
Result<std::vector<UniqueFd>> AdoptUdp(const std::vector<int>& inherited, const Address& address,
                                       const UdpSocketOptions& options) {
  std::vector<UniqueFd> adopted;
  const std::string wanted = address.ToString();
  for (int borrowed : inherited) {
    if (SocketType(borrowed) != SOCK_DGRAM) continue;
    Result<Address> bound = LocalAddress(borrowed);
    if (!bound || bound->ToString() != wanted) continue;
    UniqueFd fd(::fcntl(borrowed, F_DUPFD_CLOEXEC, 0));
    const std::string what =
        "adopt the udp socket on " + wanted + " (fd " + std::to_string(borrowed) + ")";
    if (!fd) return Error::FromErrno(errno, what + ": dup");
    if (Status st = PrepareUdpListening(fd.get(), address.family(), options); !st) {
      return Error(st.error().code(), what + ": " + st.error().message());
    }
    adopted.push_back(std::move(fd));
  }
  return adopted;
}

bool Unlimited(const RateLimit& r) { return r.bytes_per_second == 0; }

}  // namespace

std::string UdpListenOptionsError(const ListenOptions& o) {
  std::vector<Address> addresses{o.address};
  addresses.insert(addresses.end(), o.extra_addresses.begin(), o.extra_addresses.end());
  for (const Address& a : addresses) {
    if (a.family() != AF_INET && a.family() != AF_INET6) {
      return "address " + a.ToString() + ": a UDP listener needs an IPv4 or IPv6 address";
    }
  }
  if (o.tls != nullptr) return "tls: a UDP listener relays datagrams as they are (no TLS)";
  if (o.on_accept) return "on_accept: a UDP listener has no connection to hand over";
  if (o.proxy_protocol) return "proxy_protocol: not for a UDP listener";
  if (o.route_by != RouteBy::kNone || !o.routes.empty()) {
    return "route_by and routes: a UDP listener has one pool (its backends)";
  }
  const PairOptions& p = o.pair;
  if (!Unlimited(p.a_to_b) || !Unlimited(p.b_to_a) || p.high_watermark != 0 ||
      p.low_watermark != 0 || p.filter) {
    return "pair (rate limits, watermarks, filters): not for a UDP listener";
  }
  for (const BackendOptions& b : o.backends) {
    const std::string name = b.host.empty() ? b.address.ToString() : b.host;
    if (b.tls != nullptr) return "backend " + name + ": tls is not for a UDP listener";
    if (b.send_proxy != BackendOptions::SendProxy::kNone) {
      return "backend " + name + ": send_proxy is not for a UDP listener";
    }
    if (b.host.empty() && b.address.is_unix()) {
      return "backend " + name + ": a UDP listener needs an IPv4 or IPv6 backend";
    }
  }
  if (o.idle_timeout && *o.idle_timeout == Duration::zero()) {
    return "idle_timeout must be > 0 for a UDP listener: it is what ends a flow";
  }
  if (o.udp.receive_buffer > INT_MAX || o.udp.send_buffer > INT_MAX) {
    return "udp receive_buffer and send_buffer must be at most " + std::to_string(INT_MAX);
  }
  return "";
}

UdpListener::UdpListener(std::vector<std::unique_ptr<Worker>>& workers, ListenOptions options,
                         const EngineOptions& engine, std::shared_ptr<ListenerCounters> counters)
    : EngineListener(std::move(options), std::move(counters)), workers_(workers) {
  group_ = std::make_unique<BackendGroup>(std::string(), options_.backends, options_.balance,
                                          options_, engine, *counters_);
  route_.counters = counters_.get();
  route_.idle_timeout = options_.idle_timeout.value_or(engine.idle_timeout);
  if (route_.idle_timeout == Duration::zero()) route_.idle_timeout = kDefaultUdpIdleTimeout;
  route_.retries = options_.retries;
  route_.responses = options_.udp.responses;
  route_.max_flows = options_.max_connections;
  route_.flows_open = &flows_open_;
  route_.on_close = &options_.on_close;
  route_.sockets.receive_buffer = static_cast<int>(options_.udp.receive_buffer);
  route_.sockets.send_buffer = static_cast<int>(options_.udp.send_buffer);
  if (!options_.name.empty()) route_.detail_prefix = "listener " + options_.name + ": ";
  route_.add_hold = [this] { AddHold(); };
  route_.drop_hold = [this] { DropHold(); };
}

UdpListener::~UdpListener() = default;

Result<std::vector<std::vector<UniqueFd>>> UdpListener::Bind(size_t workers) {
  std::vector<std::vector<UniqueFd>> out(workers);
  lane_addresses_.assign(workers, {});
  std::vector<Address> given{options_.address};
  given.insert(given.end(), options_.extra_addresses.begin(), options_.extra_addresses.end());
  for (const Address& address : given) {
    Result<std::vector<UniqueFd>> adopted =
        AdoptUdp(options_.inherited_sockets, address, route_.sockets);
    if (!adopted) return adopted.error();
    std::vector<UniqueFd> sockets = std::move(adopted).value();
    // One socket per worker at least. The first settles the address (the
    // kernel's port for port 0); the others join its SO_REUSEPORT group.
    Address bound = address;
    while (sockets.size() < workers) {
      Result<UniqueFd> fd = BindUdp(bound, route_.sockets);
      if (!fd) return fd.error();
      if (sockets.empty()) {
        Result<Address> local = LocalAddress(fd->get());
        if (!local) return local.error();
        bound = *local;
      }
      sockets.push_back(std::move(fd).value());
    }
    bound_.push_back(bound);
    // Adopted sockets beyond one per worker: a worker reads several (none
    // is left unread, or its share of the clients would be lost).
    for (size_t k = 0; k < sockets.size(); ++k) {
      out[k % workers].push_back(std::move(sockets[k]));
      lane_addresses_[k % workers].push_back(bound);
    }
  }
  return out;
}

Status UdpListener::Start(WorkerPool& pool) {
  pool_ = &pool;
  if (Status resolved = group_->Resolve(); !resolved) return resolved;
  Result<std::vector<std::vector<UniqueFd>>> sockets = Bind(pool.size());
  if (!sockets) return sockets.error();
  group_->Start(pool, options_.name.empty() ? bound_.front().ToString() : options_.name);
  route_.pool = group_->route().pool;
  for (size_t w = 0; w < pool.size(); ++w) {
    lanes_.push_back(std::make_unique<UdpLane>(*workers_[w], route_, std::move((*sockets)[w]),
                                               lane_addresses_[w]));
  }
  std::vector<Status> started(lanes_.size());
  pool.RunOnEach([&](size_t w) { started[w] = lanes_[w]->Start(); });
  for (const Status& st : started) {
    if (!st)
      return Error(st.error().code(),
                   "udp listen on " + bound_.front().ToString() + ": " + st.error().message());
  }
  return Status::Ok();
}

void UdpListener::Stop() {
  if (pool_ != nullptr) {
    pool_->RunOnEach([this](size_t w) {
      if (w < lanes_.size()) lanes_[w]->Stop();
    });
  }
  group_->StopResolving();
}

void UdpListener::Shutdown(WorkerPool& pool) {
  pool_ = &pool;
  Stop();
  pool.RunOnEach([this](size_t w) {
    if (w == 0) group_->StopOnLoop();
  });
}

Result<std::vector<ListeningSocket>> UdpListener::ListeningSockets() const {
  std::vector<ListeningSocket> out;
  for (const auto& lane : lanes_) {
    Result<std::vector<ListeningSocket>> exported = lane->ExportSockets();
    if (!exported) return exported.error();
    std::move(exported->begin(), exported->end(), std::back_inserter(out));
  }
  return out;
}

ListenerMetrics UdpListener::Metrics() const {
  ListenerMetrics m;
  m.name = options_.name;
  m.protocol = ProtocolName(Protocol::kUdp);
  for (const Address& a : bound_) m.addresses.push_back(a.ToString());
  m.max_connections = options_.max_connections;
  counters_->Fill(m);
  m.backends = group_->Metrics();
  return m;
}

}  // namespace zrelay
