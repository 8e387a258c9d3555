// UdpLane: a UDP listener's share of one worker. It reads the worker's
// listening sockets (one per address, or more when it adopted more), keeps
// the worker's flows in a table of its own (no lock: only this worker's
// thread touches it), and moves datagrams both ways:
//
//   client -> listening socket -recvmmsg-> flow -> connected socket -> endpoint
//   endpoint -> connected socket -recvmmsg-> reply batch -sendmmsg-> client
//
// Replies from every flow of a loop turn leave in one sendmmsg per
// listening socket, sent after the turn's events; a burst from one client
// leaves in one sendmmsg on its flow's socket. GRO runs stay runs (sent
// with UDP_SEGMENT). Everything here runs on the worker's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/event_loop.h"
#include "engine/udp_batch.h"
#include "engine/udp_socket.h"
#include "relay/backend_pool.h"
#include "relay/listener_counters.h"
#include "relay/relay.h"
#include "relay/udp_flow_key.h"
#include "relay/worker.h"

namespace zrelay {

// What a UdpLane needs of its listener: shared by the listener's lanes.
struct UdpRoute {
  BackendPool* pool = nullptr;
  ListenerCounters* counters = nullptr;
  Duration idle_timeout{};
  int retries = 0;
  uint32_t responses = 0;  // UdpOptions::responses
  size_t max_flows = 0;
  std::atomic<size_t>* flows_open = nullptr;  // across the listener's lanes
  const OnClose* on_close = nullptr;
  UdpSocketOptions sockets{};
  std::string detail_prefix;  // "listener dns: " for a named listener
  // A flow starts / stops holding the listener (EngineListener holds).
  std::function<void()> add_hold;
  std::function<void()> drop_hold;
};

class UdpLane final : public WorkerTenant {
 public:
  // `sockets`: this worker's listening sockets, with the address each is
  // bound to.
  UdpLane(Worker& worker, const UdpRoute& route, std::vector<UniqueFd> sockets,
          std::vector<Address> bound);
  ~UdpLane() override;
  UdpLane(const UdpLane&) = delete;
  UdpLane& operator=(const UdpLane&) = delete;

  // The worker's thread: starts reading the listening sockets.
  Status Start();
  // The worker's thread: stops reading them. Open flows go on relaying
  // replies until they have been quiet for kStoppedLinger (or their idle
  // timeout, if shorter); the sockets close with the last one. Idempotent.
  void Stop();

  // dup()s of the listening sockets, with their addresses. Any thread
  // before Stop() (the descriptors do not change meanwhile).
  Result<std::vector<ListeningSocket>> ExportSockets() const;

  // WorkerTenant.
  void AbortAll() override;
  void WorkerClosing() override;

  // A stopped listener's flows linger this long after their last datagram.
  static constexpr Duration kStoppedLinger = seconds(1);

 private:
  struct Socket;
  struct Flow;

  void ReadClients(Socket& socket);
  // The flow `d` belongs to, made for its first datagram; null when the
  // datagram is dropped (flow cap, no healthy endpoint, no socket).
  Flow* FlowFor(Socket& socket, const UdpDatagram& d);
  // Opens `flow`'s socket to its endpoint and starts watching it.
  Status Connect(Flow& flow);
  // Sends what the client-side batch holds for `flow` on its socket.
  void SendToBackend(Flow& flow);
  void ReadBackend(Flow& flow);
  // The endpoint answered with an ICMP error (or a send failed with one).
  void BackendFailed(Flow& flow, int error);
  void FlushReplies(Socket& socket);
  void OnIdle(Flow& flow);
  void CloseFlow(Flow& flow, CloseCause cause, int error, std::string detail);
  // Counts what the kernel dropped on `socket` since it last said.
  void CountDrops(Socket& socket, const UdpReceiveBatch& batch);
  // Stopped with no flow left: closes the sockets, leaves the worker.
  void FinishIfIdle();
  Duration FlowTimeout() const;

  Worker* worker_;  // null once the worker is gone
  EventLoop& loop_;
  const UdpRoute& route_;
  ListenerWorkerCounters& counters_;
  std::vector<std::unique_ptr<Socket>> sockets_;
  std::unordered_map<UdpFlowKey, std::unique_ptr<Flow>, UdpFlowKeyHash> flows_;
  UdpReceiveBatch from_clients_;
  UdpReceiveBatch from_backend_;
  UdpSendBatch to_backend_;
  bool stopped_ = false;
};

}  // namespace zrelay
