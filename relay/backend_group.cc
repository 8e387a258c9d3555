#include "relay/backend_group.h"

#include <utility>

namespace zrelay {

BackendGroup::BackendGroup(std::string route_name, std::vector<BackendOptions> backends,
                           BalancePolicy balance, const ListenOptions& listener,
                           const EngineOptions& engine, ListenerCounters& counters)
    : route_name_(std::move(route_name)),
      balance_(balance),
      listener_(listener),
      counters_(counters),
      resolver_(std::make_unique<Resolver>(std::move(backends), listener.resolve)) {
  route_.counters = &counters_;
  route_.connect_timeout = listener.connect_timeout;
  route_.retries = listener.retries;
  route_.idle_timeout = listener.idle_timeout.value_or(engine.idle_timeout);
  route_.handshake_timeout = listener.handshake_timeout.value_or(engine.handshake_timeout);
  if (!listener.name.empty()) route_.detail_prefix = "listener " + listener.name + ": ";
  if (!route_name_.empty()) route_.detail_prefix += "route " + route_name_ + ": ";
}

BackendGroup::~BackendGroup() { StopResolving(); }

Status BackendGroup::Resolve() {
  const std::string where = route_name_.empty() ? "" : "route " + route_name_ + ": ";
  Status resolved = resolver_->ResolveAll();
  if (!resolved.ok()) return Error(resolved.error().code(), where + resolved.error().message());
  auto generation = NewGeneration(resolver_->Endpoints());
  if (!generation.ok()) {
    return Error(generation.error().code(), where + generation.error().message());
  }
  first_ = std::move(generation.value());
  return Status::Ok();
}

void BackendGroup::Start(WorkerPool& loops, const std::string& listener_label) {
  PoolOptions po;
  po.label = listener_label;
  if (!route_name_.empty()) po.label += " route " + route_name_;
  po.policy = balance_;
  po.eject_after = listener_.eject_after;
  po.eject_for = listener_.eject_for;
  po.health = listener_.health;
  po.on_event = listener_.on_event;
  pool_ = std::make_unique<BackendPool>(loops, std::move(po), std::move(first_));
  route_.pool = pool_.get();
  resolver_->Start(listener_.resolve_interval,
                   [this](const std::vector<std::string>& lines,
                          std::optional<std::vector<Endpoint>> endpoints) {
                     OnResolved(lines, std::move(endpoints));
                   });
}

void BackendGroup::StopResolving() { resolver_->Stop(); }

void BackendGroup::StopOnLoop() {
  if (pool_) pool_->StopOnLoop();
}

std::vector<BackendMetrics> BackendGroup::Metrics() const {
  std::vector<BackendMetrics> out = pool_->Metrics();
  for (BackendMetrics& m : out) m.route = route_name_;
  return out;
}

Result<std::shared_ptr<PoolGeneration>> BackendGroup::NewGeneration(
    std::vector<Endpoint> endpoints) {
  for (Endpoint& e : endpoints) e.counters = &counters_.Endpoint(route_name_, e.address);
  return PoolGeneration::Create(std::move(endpoints), balance_);
}

void BackendGroup::OnResolved(const std::vector<std::string>& lines,
                              std::optional<std::vector<Endpoint>> endpoints) {
  for (const std::string& line : lines) pool_->Event(line);
  if (!endpoints) return;
  auto generation = NewGeneration(std::move(*endpoints));
  if (!generation.ok()) {
    pool_->Event("new addresses not used: " + generation.error().message());
    return;
  }
  pool_->Install(std::move(generation.value()));
}

}  // namespace zrelay
