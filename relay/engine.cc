// Engine: the worker pool, one relay Worker per loop, and the listeners.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/listener.h"
#include "engine/socket.h"
#include "engine/worker_pool.h"
#include "relay/backend_pool.h"
#include "relay/connection_impl.h"
#include "relay/engine_listener.h"
#include "relay/engine_options_check.h"
#include "relay/listener_reaper.h"
#include "relay/pair.h"
#include "relay/pair_options.h"
#include "relay/relay.h"
#include "relay/relay_listener.h"
#include "relay/udp_listener.h"
#include "relay/worker.h"

namespace zrelay {
namespace {

// "listener web: " (or the address, for an unnamed listener).
std::string Label(const ListenOptions& o) {
  return "listener " + (o.name.empty() ? o.address.ToString() : o.name) + ": ";
}

// The listener's addresses as given: address, then extra_addresses.
std::vector<Address> GivenAddresses(const ListenOptions& o) {
  std::vector<Address> out{o.address};
  out.insert(out.end(), o.extra_addresses.begin(), o.extra_addresses.end());
  return out;
}

void AddListenerStats(WorkerStats& w, const ListenerStats& l) {
  w.accept_fd_exhausted += l.fd_exhausted;
  w.accept_paused_max_connections += l.paused_max_connections;
}

}  // namespace

class Engine::Impl {
 public:
  explicit Impl(const EngineOptions& options) : options_(options) {}

  Status Init() {
    WorkerPoolOptions po;
    po.workers = options_.workers;
    po.pin_cpus = options_.pin_cpus;
    po.io = options_.io;
    auto pool = WorkerPool::Start(po);
    if (!pool.ok()) return pool.error();
    pool_ = std::move(pool.value());
    workers_.resize(pool_->size());
    // Each Worker is built on its own thread: it belongs to that loop.
    pool_->RunOnEach(
        [this](size_t i) { workers_[i] = std::make_unique<Worker>(i, pool_->loop(i), options_); });
    reaper_ = std::make_unique<ListenerReaper>(*pool_);
    retired_stats_.resize(workers_.size());
    return Status::Ok();
  }

  ~Impl() {
    if (reaper_) reaper_->Stop();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, l] : listeners_) l->Shutdown(*pool_);
    }
    if (pool_) {
      pool_->RunOnEach([this](size_t i) { workers_[i].reset(); });
      pool_->Stop();
    }
  }

  // The caller's own worker when called from one, else the next one
  // round-robin.
  size_t PickWorker() {
    int current = WorkerPool::CurrentWorker();
    return current >= 0 && static_cast<size_t>(current) < workers_.size() &&
                   pool_->loop(current).InLoopThread()
               ? static_cast<size_t>(current)
               : next_worker_.fetch_add(1, std::memory_order_relaxed) % workers_.size();
  }

  void Pipe(Leg a, Leg b, OnClose on_close, const PairOptions& options) {
    // A caller on one of our workers keeps the pair on its own worker. Either
    // way the pair starts from a posted task, so on_close never runs inside
    // Pipe() itself.
    const size_t i = PickWorker();
    // std::function needs a copyable callable; the legs ride in a shared box.
    auto box = std::make_shared<std::tuple<Leg, Leg, OnClose, PairOptions>>(
        std::move(a), std::move(b), std::move(on_close), options);
    pool_->loop(i).Post([this, i, box] {
      auto& [la, lb, cb, po] = *box;
      Pair::Start(*workers_[i], std::move(la), std::move(lb), std::move(cb), po);
    });
  }

  void Adopt(UniqueFd fd, OnConnection ready) {
    // Like Pipe: the caller's worker or the next one, from a posted task.
    const size_t i = PickWorker();
    auto box = std::make_shared<std::pair<UniqueFd, OnConnection>>(std::move(fd), std::move(ready));
    pool_->loop(i).Post([this, i, box] {
      Result<Address> peer = PeerAddress(box->first.get());
      ConnectionPtr connection = ConnectionImpl::Adopt(
          *workers_[i], std::move(box->first), peer.ok() ? *peer : Address(), /*accepted=*/false);
      if (box->second) box->second(std::move(connection));
    });
  }

  Result<ListenerId> Listen(const ListenOptions& options) {
    Result<std::unique_ptr<EngineListener>> listener =
        StartListener(options, std::make_shared<ListenerCounters>(workers_.size()));
    if (!listener) return listener.error();
    std::unique_lock<std::mutex> lock(mu_);
    if (draining_) {
      lock.unlock();
      (*listener)->Shutdown(*pool_);
      return Error::Invalid(Label(options) + "the engine is draining");
    }
    ListenerId id = next_listener_id_++;
    listeners_.emplace(id, std::move(listener).value());
    return id;
  }

  Status Reconfigure(ListenerId id, const ListenOptions& options) {
    std::lock_guard<std::mutex> changing(change_mu_);
    ListenOptions next = options;
    std::vector<ListeningSocket> sockets;
    std::shared_ptr<ListenerCounters> counters;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (draining_) return Error::Invalid(Label(options) + "the engine is draining");
      auto it = listeners_.find(id);
      if (it == listeners_.end()) return Error::Invalid("no listener " + std::to_string(id));
      const EngineListener& current = *it->second;
      if (current.options().protocol != options.protocol) {
        return Error::Invalid(Label(options) +
                              "Reconfigure keeps a listener's protocol (Close it, then Listen)");
      }
      const std::vector<Address> given = GivenAddresses(current.options());
      const std::vector<Address> bound = current.addresses();
      const std::vector<Address> wanted = GivenAddresses(options);
      // Each address as the listener was given it or as it is bound (the
      // kernel's port for port 0); the new listener takes the bound one.
      bool same = wanted.size() == given.size();
      for (size_t i = 0; same && i < wanted.size(); ++i) {
        const std::string w = wanted[i].ToString();
        same = w == given[i].ToString() || w == bound[i].ToString();
      }
      if (!same) {
        return Error::Invalid(Label(options) +
                              "Reconfigure keeps a listener's addresses (listen on new ones "
                              "with Listen, then Close this one)");
      }
      next.address = bound.front();
      next.extra_addresses.assign(bound.begin() + 1, bound.end());
      Result<std::vector<ListeningSocket>> exported = current.ListeningSockets();
      if (!exported) {
        return Error(exported.error().code(), Label(options) + exported.error().message());
      }
      sockets = std::move(exported).value();
      counters = current.counters();
    }
    // The new listener adopts the same sockets (its own dup()s): their
    // queues never close, and it accepts before the old one stops.
    next.inherited_sockets.clear();
    for (const ListeningSocket& s : sockets) next.inherited_sockets.push_back(s.fd.get());
    // Its counters go on where the old one's are: they belong to the listener.
    Result<std::unique_ptr<EngineListener>> fresh = StartListener(next, counters);
    if (!fresh) return fresh.error();
    std::unique_ptr<EngineListener> old;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (draining_) {  // began meanwhile: the new listener must not accept
        lock.unlock();
        (*fresh)->Shutdown(*pool_);
        return Error::Invalid(Label(options) + "the engine is draining");
      }
      old = std::exchange(listeners_[id], std::move(fresh).value());
    }
    Retire(std::move(old));
    return Status::Ok();
  }

  Status Close(ListenerId id) {
    std::lock_guard<std::mutex> changing(change_mu_);
    std::unique_ptr<EngineListener> closing;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = listeners_.find(id);
      if (it == listeners_.end()) return Error::Invalid("no listener " + std::to_string(id));
      closing = std::move(it->second);
      listeners_.erase(it);
    }
    Retire(std::move(closing));
    return Status::Ok();
  }

  Result<std::vector<ListeningSocket>> ListeningSockets(ListenerId id) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = listeners_.find(id);
    if (it == listeners_.end()) return Error::Invalid("no listener " + std::to_string(id));
    return it->second->ListeningSockets();
  }

  Result<Address> ListenAddress(ListenerId id) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = listeners_.find(id);
    if (it == listeners_.end()) return Error::Invalid("no listener " + std::to_string(id));
    return it->second->address();
  }

  Result<std::vector<Address>> ListenAddresses(ListenerId id) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = listeners_.find(id);
    if (it == listeners_.end()) return Error::Invalid("no listener " + std::to_string(id));
    return it->second->addresses();
  }

  Result<size_t> MaxConnections(ListenerId id) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = listeners_.find(id);
    if (it == listeners_.end()) return Error::Invalid("no listener " + std::to_string(id));
    return it->second->max_connections();
  }

  EngineStats Stats() const {
    EngineStats s;
    s.workers.resize(workers_.size());
    pool_->RunOnEach([&](size_t i) { s.workers[i] = workers_[i]->Snapshot(); });
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, l] : listeners_) {
        (void)id;
        for (size_t i = 0; i < s.workers.size(); ++i) AddListenerStats(s.workers[i], l->Stats(i));
      }
      for (size_t i = 0; i < s.workers.size(); ++i) {
        AddListenerStats(s.workers[i], retired_stats_[i]);
      }
    }
    for (const WorkerStats& w : s.workers) Add(s.total, w);
    return s;
  }

  MetricsSnapshot Metrics() const {
    MetricsSnapshot m;
    m.draining = draining_.load(std::memory_order_relaxed);
    for (const auto& worker : workers_) {
      const WorkerStats s = worker->Snapshot();
      WorkerMetrics& w = m.workers.emplace_back();
      w.pairs_open = s.pairs_open;
      w.pipes_in_use = s.pipes_in_use;
      w.pipes_pooled = s.pipes_pooled;
      w.pipe_pool_exhausted_total = s.pipe_pool_exhausted;
      w.buffers_in_use = s.buffers_in_use;
      w.buffers_pooled = s.buffers_pooled;
      w.splice_switches_total = s.splice_switches;
    }
    // The listener map's lock only keeps listeners from coming or going
    // meanwhile; no worker ever takes it.
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, l] : listeners_) {
      (void)id;
      m.listeners.push_back(l->Metrics());
    }
    return m;
  }

  void Drain(Duration grace) {
    // Concurrent drains share one deadline, the earliest asked for: a second
    // Drain(0) (zrelayd's second SIGTERM) cuts a running Drain's wait short.
    // It is set before the listeners stop, so a caller that sees them stopped
    // knows the deadline is in place.
    {
      std::lock_guard<std::mutex> lock(drain_mu_);
      TimePoint mine = Clock::now() + std::min(grace, kForever);
      drain_deadline_ = drainers_ == 0 ? mine : std::min(drain_deadline_, mine);
      ++drainers_;
      drain_cv_.notify_all();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      draining_ = true;
      for (auto& [id, l] : listeners_) l->Stop();
    }
    while (OpenWork() > 0) {
      std::unique_lock<std::mutex> lock(drain_mu_);
      if (Clock::now() >= drain_deadline_) break;
      // Wakes early when another Drain moves the deadline closer.
      drain_cv_.wait_until(lock, std::min(drain_deadline_, Clock::now() + kDrainPoll));
    }
    pool_->RunOnEach([this](size_t i) { workers_[i]->AbortAll(); });
    std::lock_guard<std::mutex> lock(drain_mu_);
    --drainers_;
  }

  size_t workers() const { return workers_.size(); }
  IoBackend io() const { return pool_->io(); }

 private:
  static void Add(WorkerStats& t, const WorkerStats& w) {
    t.pairs_open += w.pairs_open;
    t.connections_open += w.connections_open;
    t.pairs_closed += w.pairs_closed;
    t.accepted += w.accepted;
    t.connect_failures += w.connect_failures;
    t.bytes_a_to_b += w.bytes_a_to_b;
    t.bytes_b_to_a += w.bytes_b_to_a;
    t.bytes_spliced += w.bytes_spliced;
    t.bytes_copied += w.bytes_copied;
    t.pipes_in_use += w.pipes_in_use;
    t.pipes_pooled += w.pipes_pooled;
    t.pipe_pool_exhausted += w.pipe_pool_exhausted;
    t.buffers_in_use += w.buffers_in_use;
    t.buffers_pooled += w.buffers_pooled;
    t.splice_switches += w.splice_switches;
    t.accept_fd_exhausted += w.accept_fd_exhausted;
    t.accept_paused_max_connections += w.accept_paused_max_connections;
    t.backend_fd_exhausted += w.backend_fd_exhausted;
    t.backend_retries += w.backend_retries;
    t.no_healthy_backend += w.no_healthy_backend;
    t.udp.flows_open += w.udp.flows_open;
    t.udp.flows_created += w.udp.flows_created;
    t.udp.datagrams_client_to_backend += w.udp.datagrams_client_to_backend;
    t.udp.datagrams_backend_to_client += w.udp.datagrams_backend_to_client;
    t.udp.bytes_client_to_backend += w.udp.bytes_client_to_backend;
    t.udp.bytes_backend_to_client += w.udp.bytes_backend_to_client;
    t.udp.receive_drops += w.udp.receive_drops;
    t.udp.flow_cap_drops += w.udp.flow_cap_drops;
    t.udp.backend_unreachable += w.udp.backend_unreachable;
    t.udp.send_drops += w.udp.send_drops;
  }

  // A listener for `options`, started: bound, or adopting the
  // inherited_sockets bound to its addresses. It counts into `counters`.
  Result<std::unique_ptr<EngineListener>> StartListener(
      const ListenOptions& options, std::shared_ptr<ListenerCounters> counters) {
    if (options.protocol == Protocol::kUdp) {
      if (std::string error = UdpListenOptionsError(options); !error.empty()) {
        return Error::Invalid(Label(options) + error);
      }
    }
    Status valid = ValidateListenOptions(options);
    if (!valid.ok()) return Error(valid.error().code(), Label(options) + valid.error().message());
    if (std::string error = PairOptionsError(options.pair, options_); !error.empty()) {
      return Error::Invalid(Label(options) + error);
    }
    ListenOptions resolved = options;
    if (resolved.max_connections == 0) {
      Result<size_t> derived = DerivedMaxConnections(options_, workers_.size(), options.protocol);
      if (!derived) {
        return Error(derived.error().code(), Label(options) + derived.error().message());
      }
      // TCP: each address has its own slots, sharing what the fds allow.
      // UDP: one cap for the listener's flows.
      resolved.max_connections =
          options.protocol == Protocol::kUdp
              ? *derived
              : std::max<size_t>(1, *derived / (1 + options.extra_addresses.size()));
    }
    std::unique_ptr<EngineListener> listener;
    if (options.protocol == Protocol::kUdp) {
      listener = std::make_unique<UdpListener>(workers_, std::move(resolved), options_,
                                               std::move(counters));
    } else {
      listener = std::make_unique<RelayListener>(workers_, std::move(resolved), options_,
                                                 std::move(counters));
    }
    Status st = listener->Start(*pool_);
    if (!st.ok()) {
      listener->Shutdown(*pool_);
      // Bind errors already name the address.
      return Error(st.error().code(),
                   (options.name.empty() ? std::string() : "listener " + options.name + ": ") +
                       st.error().message());
    }
    return listener;
  }

  // Stops `listener` for good; its final accept counters stay in Stats().
  // The reaper destroys it once its last pair closed.
  void Retire(std::unique_ptr<EngineListener> listener) {
    listener->Shutdown(*pool_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < retired_stats_.size(); ++i) {
        const ListenerStats ls = listener->Stats(i);
        retired_stats_[i].fd_exhausted += ls.fd_exhausted;
        retired_stats_[i].paused_max_connections += ls.paused_max_connections;
      }
    }
    reaper_->Retire(std::move(listener));
  }

  // Pairs, Connections in their protocol phase, and UDP flows, open on
  // every worker.
  size_t OpenWork() const {
    std::atomic<size_t> open{0};
    pool_->RunOnEach([&](size_t i) {
      open += workers_[i]->open_pairs() + workers_[i]->open_connections() +
              workers_[i]->stats().udp_flows_open.Get();
    });
    return open.load();
  }

  EngineOptions options_;
  std::unique_ptr<WorkerPool> pool_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<size_t> next_worker_{0};
  // A Drain() has started. Set under mu_ (Listen and Reconfigure check it
  // there: they would accept again); atomic for Metrics(), which reads it
  // without.
  std::atomic<bool> draining_{false};
  mutable std::mutex mu_;
  std::map<ListenerId, std::unique_ptr<EngineListener>> listeners_;
  ListenerId next_listener_id_ = 1;
  // Accept counters of the listeners retired so far, per worker (mu_).
  std::vector<ListenerStats> retired_stats_;
  // Reconfigure and Close, one at a time (taken before mu_).
  std::mutex change_mu_;
  // Retired listeners, until their last pair closed. Destroyed with the
  // others, after the loops stopped.
  std::unique_ptr<ListenerReaper> reaper_;
  // Drain: how often a drain looks for open pairs, and the deadline shared
  // by the drains running now (guarded by drain_mu_).
  static constexpr Duration kDrainPoll = milliseconds(10);
  // A longer grace waits as long (and keeps now + grace from overflowing).
  static constexpr Duration kForever = std::chrono::hours(24 * 365);
  std::mutex drain_mu_;
  std::condition_variable drain_cv_;
  int drainers_ = 0;
  TimePoint drain_deadline_;
};

const char* ProtocolName(Protocol protocol) { return protocol == Protocol::kUdp ? "udp" : "tcp"; }

Result<std::unique_ptr<Engine>> Engine::Start(const EngineOptions& options) {
  Status valid = ValidateOptions(options);
  if (!valid.ok()) return valid.error();
  auto impl = std::make_unique<Impl>(options);
  Status st = impl->Init();
  if (!st.ok()) return st.error();
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

void Engine::Pipe(Leg a, Leg b, OnClose on_close) {
  impl_->Pipe(std::move(a), std::move(b), std::move(on_close), PairOptions{});
}
void Engine::Pipe(Leg a, Leg b, OnClose on_close, const PairOptions& options) {
  impl_->Pipe(std::move(a), std::move(b), std::move(on_close), options);
}
void Engine::Adopt(UniqueFd fd, OnConnection ready) {
  impl_->Adopt(std::move(fd), std::move(ready));
}
Result<ListenerId> Engine::Listen(const ListenOptions& options) { return impl_->Listen(options); }
Result<Address> Engine::ListenAddress(ListenerId id) const { return impl_->ListenAddress(id); }
Result<std::vector<Address>> Engine::ListenAddresses(ListenerId id) const {
  return impl_->ListenAddresses(id);
}
Result<size_t> Engine::MaxConnections(ListenerId id) const { return impl_->MaxConnections(id); }
Status Engine::Reconfigure(ListenerId id, const ListenOptions& options) {
  return impl_->Reconfigure(id, options);
}
Status Engine::Close(ListenerId id) { return impl_->Close(id); }
Result<std::vector<ListeningSocket>> Engine::ListeningSockets(ListenerId id) const {
  return impl_->ListeningSockets(id);
}
EngineStats Engine::Stats() const { return impl_->Stats(); }
MetricsSnapshot Engine::Metrics() const { return impl_->Metrics(); }
void Engine::Drain(Duration grace) { impl_->Drain(grace); }
size_t Engine::workers() const { return impl_->workers(); }
IoBackend Engine::io() const { return impl_->io(); }

}  // namespace zrelay
