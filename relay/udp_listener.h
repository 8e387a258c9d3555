// UdpListener: a ListenOptions with protocol kUdp at work (relay.h says
// what a UDP listener does). Each worker gets its own SO_REUSEPORT socket
// per address and a UdpLane that keeps that worker's flows; the backends
// form a BackendGroup as a TCP listener's do (resolution, balancing,
// passive and active health), and each flow holds a lease on its endpoint
// while it lives.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "engine/worker_pool.h"
#include "relay/backend_group.h"
#include "relay/engine_listener.h"
#include "relay/udp_lane.h"
#include "relay/worker.h"

namespace zrelay {

// Why `options` cannot make a UDP listener (a field it cannot honour),
// or empty.
std::string UdpListenOptionsError(const ListenOptions& options);

class UdpListener final : public EngineListener {
 public:
  // `options` passed UdpListenOptionsError; max_connections is resolved.
  UdpListener(std::vector<std::unique_ptr<Worker>>& workers, ListenOptions options,
              const EngineOptions& engine, std::shared_ptr<ListenerCounters> counters);
  ~UdpListener() override;

  Status Start(WorkerPool& pool) override;
  // Stops reading the listening sockets; open flows linger for their
  // replies (UdpLane::Stop).
  void Stop() override;
  void Shutdown(WorkerPool& pool) override;
  Result<std::vector<ListeningSocket>> ListeningSockets() const override;
  std::vector<Address> addresses() const override { return bound_; }
  // UDP has no accept: nothing of a TCP listener's accept counters.
  ListenerStats Stats(size_t /*worker*/) const override { return {}; }
  ListenerMetrics Metrics() const override;

 private:
  // Binds (or adopts) the sockets of every address; out[w] are worker w's,
  // with their addresses in `bound` order.
  Result<std::vector<std::vector<UniqueFd>>> Bind(size_t workers);

  std::vector<std::unique_ptr<Worker>>& workers_;
  std::unique_ptr<BackendGroup> group_;
  std::atomic<size_t> flows_open_{0};
  UdpRoute route_;
  std::vector<Address> bound_;  // one per address, as bound
  // lane_addresses_[w][k]: the address of worker w's socket k.
  std::vector<std::vector<Address>> lane_addresses_;
  std::vector<std::unique_ptr<UdpLane>> lanes_;  // lanes_[w] runs on worker w
  WorkerPool* pool_ = nullptr;                   // set by Start()
};

}  // namespace zrelay
