#include "relay/backend_pool.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace zrelay {
namespace {

bool Contains(const std::vector<size_t>& v, size_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

int64_t SteadyMillis() {
  return std::chrono::duration_cast<milliseconds>(Clock::now().time_since_epoch()).count();
}

std::string ErrnoName(int err) {
  const char* name = err != 0 ? ::strerrorname_np(err) : nullptr;
  return name != nullptr ? name : "error";
}

}  // namespace

Result<std::shared_ptr<PoolGeneration>> PoolGeneration::Create(std::vector<Endpoint> endpoints,
                                                               BalancePolicy policy) {
  std::vector<BackendSpec> specs;
  specs.reserve(endpoints.size());
  for (const Endpoint& e : endpoints) specs.push_back({e.address, e.weight});
  auto set = BackendSet::Create(std::move(specs));
  if (!set.ok()) return set.error();
  std::shared_ptr<PoolGeneration> g(new PoolGeneration());
  g->endpoints_ = std::move(endpoints);
  g->set_ = std::move(set.value());
  g->balancer_ = Balancer::Create(policy, *g->set_);
  g->state_.reset(new EndpointState[g->endpoints_.size()]);
  return g;
}

void PoolGeneration::UpdateHealthy(size_t i) {
  set_->SetHealthy(i, !ejected(i).load() && !down(i).load());
  // A change that raced with this one (an ejection on a worker while a check
  // marked the endpoint up) is seen by this second look.
  if (ejected(i).load() || down(i).load()) set_->SetHealthy(i, false);
}

BackendPool::BackendPool(WorkerPool& loops, PoolOptions options,
                         std::shared_ptr<PoolGeneration> first)
    : loops_(loops),
      options_(std::move(options)),
      lanes_(loops.size()),
      current_(first),
      installed_{first} {
  // Before the listener accepts: the workers see the lanes through the
  // tasks that start their accepting.
  for (Lane& lane : lanes_) {
    lane.generation = first;
    lane.picker = first->balancer().NewPicker();
  }
  if (options_.health) {
    loops_.loop(0).Post([this, first] { StartChecks(first); });
  }
}

void BackendPool::StopOnLoop() {
  checker_.reset();
  ejections_.clear();
}

void BackendPool::StartChecks(const std::shared_ptr<PoolGeneration>& generation) {
  checker_.reset();  // the previous generation's
  std::vector<HealthTarget> targets;
  for (const Endpoint& e : generation->endpoints()) targets.push_back({e.address, e.tls, e.sni});
  // The callback keeps the generation alive as long as the checker runs.
  auto checker =
      HealthChecker::Start(loops_.loop(0), *options_.health, std::move(targets),
                           [this, generation](size_t i, bool healthy, const std::string& reason) {
                             SetDown(*generation, i, !healthy, reason);
                           });
  if (!checker.ok()) {
    Event("no active health checks: " + checker.error().message());
    return;
  }
  checker_ = std::move(checker.value());
}

BackendPool::~BackendPool() = default;

std::optional<BackendChoice> BackendPool::Lease(const std::shared_ptr<PoolGeneration>& generation,
                                                size_t index) {
  BackendChoice choice;
  choice.generation = generation;
  choice.index = index;
  choice.lease = generation->set().Lease(index);
  return choice;
}

std::optional<BackendChoice> BackendPool::Pick(size_t worker, const Address& client) {
  Lane& lane = lanes_[worker];
  std::optional<size_t> i = lane.picker->Pick(client);
  if (!i) {
    NoHealthy();
    return std::nullopt;
  }
  return Lease(lane.generation, *i);
}

std::optional<BackendChoice> BackendPool::PickAgain(
    const std::shared_ptr<PoolGeneration>& generation, const std::vector<size_t>& tried) {
  PoolGeneration& g = *generation;
  const size_t start = tried.empty() ? 0 : tried.back() + 1;
  for (size_t n = 0; n < g.size(); ++n) {
    const size_t i = (start + n) % g.size();
    if (g.set().healthy(i) && !Contains(tried, i)) return Lease(generation, i);
  }
  return std::nullopt;
}

size_t BackendPool::HealthyUntried(PoolGeneration& generation, const std::vector<size_t>& tried) {
  size_t n = 0;
  for (size_t i = 0; i < generation.size(); ++i) {
    if (generation.set().healthy(i) && !Contains(tried, i)) ++n;
  }
  return n;
}

void BackendPool::ConnectFailed(const BackendChoice& choice, const Error& error) {
  PoolGeneration& g = *choice.generation;
  choice.endpoint().counters->ConnectFailed();
  const int failures = g.failures(choice.index).fetch_add(1, std::memory_order_relaxed) + 1;
  // A pool of one endpoint never ejects it (as nginx does with a single
  // server): its clients would only trade a connect error for "no healthy
  // backend", and miss the backend's return for eject_for.
  if (options_.eject_after > 0 && failures == options_.eject_after && g.size() > 1) {
    Eject(choice, failures, error);
  }
}

void BackendPool::ConnectSucceeded(const BackendChoice& choice, Duration latency) {
  choice.endpoint().counters->Connected(latency);
  std::atomic<int>& failures = choice.generation->failures(choice.index);
  // Read first: a healthy endpoint's line is then only read, never written.
  if (failures.load(std::memory_order_relaxed) != 0) failures.store(0, std::memory_order_relaxed);
}

void BackendPool::Eject(const BackendChoice& choice, int failures, const Error& error) {
  PoolGeneration& g = *choice.generation;
  if (g.ejected(choice.index).exchange(true)) return;
  g.UpdateHealthy(choice.index);
  Event("backend " + g.endpoint(choice.index).address.ToString() + " ejected after " +
        std::to_string(failures) + " connect failures (last: " + ErrnoName(error.code().value()) +
        ": " + error.message() + ")");
  // The return is timed on worker 0's loop, where every ejection lives.
  std::shared_ptr<PoolGeneration> generation = choice.generation;
  const size_t index = choice.index;
  loops_.loop(0).Post([this, generation, index] {
    Ejection& e = ejections_.emplace_back(this, generation, index);
    loops_.loop(0).ArmTimer(e.timer, options_.eject_for);
  });
}

void BackendPool::Return(Ejection* ejection) {
  PoolGeneration& g = *ejection->generation;
  const size_t i = ejection->index;
  g.failures(i).store(0, std::memory_order_relaxed);
  g.ejected(i).store(false);
  g.UpdateHealthy(i);
  Event("backend " + g.endpoint(i).address.ToString() + " back in after " +
        std::to_string(std::chrono::duration_cast<milliseconds>(options_.eject_for).count()) +
        " ms out");
  ejections_.remove_if([ejection](const Ejection& e) { return &e == ejection; });
}

void BackendPool::SetDown(PoolGeneration& generation, size_t index, bool down,
                          const std::string& reason) {
  if (generation.down(index).exchange(down) == down) return;
  generation.UpdateHealthy(index);
  Event("backend " + generation.endpoint(index).address.ToString() + (down ? " down: " : " up: ") +
        reason);
}

void BackendPool::NoHealthy() {
  const int64_t now = SteadyMillis();
  int64_t quiet_until = quiet_until_ms_.load(std::memory_order_relaxed);
  if (now < quiet_until) return;
  // One worker wins the second; the others stay quiet.
  if (!quiet_until_ms_.compare_exchange_strong(quiet_until, now + 1000,
                                               std::memory_order_relaxed)) {
    return;
  }
  Event("no healthy backend: closing clients at once");
}

void BackendPool::Install(std::shared_ptr<PoolGeneration> generation) {
  {
    std::lock_guard<std::mutex> lock(current_mu_);
    current_ = generation;
    std::erase_if(installed_, [](const std::weak_ptr<PoolGeneration>& g) { return g.expired(); });
    installed_.push_back(generation);
  }
  for (size_t w = 0; w < lanes_.size(); ++w) {
    loops_.loop(w).Post([this, w, generation] {
      Lane& lane = lanes_[w];
      // The old picker goes before the generation it reads.
      lane.picker = generation->balancer().NewPicker();
      lane.generation = generation;
    });
  }
  if (options_.health) {
    loops_.loop(0).Post([this, generation] { StartChecks(generation); });
  }
}

void BackendPool::Event(const std::string& what) const {
  if (options_.on_event) options_.on_event("listener " + options_.label + ": " + what);
}

std::vector<BackendMetrics> BackendPool::Metrics() const {
  std::shared_ptr<PoolGeneration> generation;
  std::vector<std::shared_ptr<PoolGeneration>> alive;
  {
    std::lock_guard<std::mutex> lock(current_mu_);
    generation = current_;
    for (const auto& weak : installed_) {
      if (auto g = weak.lock()) alive.push_back(std::move(g));
    }
  }
  std::vector<BackendMetrics> out(generation->size());
  for (size_t i = 0; i < generation->size(); ++i) {
    const Endpoint& e = generation->endpoint(i);
    BackendMetrics& m = out[i];
    m.address = e.address.ToString();
    m.host = e.host;
    m.down = generation->down(i).load(std::memory_order_relaxed);
    m.ejected = generation->ejected(i).load(std::memory_order_relaxed);
    m.up = !m.down && !m.ejected;
    // A pair that picked from an older generation still counts against the
    // address there; an address's endpoints share its counters object.
    for (const auto& g : alive) {
      for (size_t j = 0; j < g->size(); ++j) {
        if (g->endpoint(j).counters == e.counters) m.connections_open += g->set().open(j);
      }
    }
    e.counters->Fill(m);
  }
  return out;
}

}  // namespace zrelay
