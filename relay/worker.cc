#include "relay/worker.h"

#include <algorithm>
#include <utility>

#include "relay/pair.h"

namespace zrelay {

Worker::Worker(size_t index, EventLoop& loop, const EngineOptions& options)
    : index_(index),
      loop_(loop),
      options_(options),
      pipes_(options.pipe_size, options.pipe_pool_cap),
      buffers_(options.buffer_size, options.buffers_cap),
      scratch_(options.buffer_size),
      env_{loop.sys(), pipes_, buffers_, stats_, scratch_} {}

Worker::~Worker() {
  while (head_ != nullptr) delete head_;  // ~Pair unlinks itself
  for (WorkerTenant* tenant : std::exchange(tenants_, {})) tenant->WorkerClosing();
}

void Worker::Adopt(Pair* pair) {
  pair->list_prev = nullptr;
  pair->list_next = head_;
  if (head_) head_->list_prev = pair;
  head_ = pair;
  ++open_;
  stats_.pairs_open.Add();
}

void Worker::Forget(Pair* pair) {
  if (pair->list_prev) {
    pair->list_prev->list_next = pair->list_next;
  } else if (head_ == pair) {
    head_ = pair->list_next;
  } else {
    return;  // not in the list (already forgotten)
  }
  if (pair->list_next) pair->list_next->list_prev = pair->list_prev;
  pair->list_prev = pair->list_next = nullptr;
  --open_;
  stats_.pairs_open.Sub();
  stats_.pairs_closed.Add();
  auto it = std::find(buffer_waiters_.begin(), buffer_waiters_.end(), pair);
  if (it != buffer_waiters_.end()) buffer_waiters_.erase(it);
}

void Worker::WaitForBuffer(Pair* pair) {
  if (std::find(buffer_waiters_.begin(), buffer_waiters_.end(), pair) == buffer_waiters_.end()) {
    buffer_waiters_.push_back(pair);
  }
}

void Worker::WakeBufferWaitersIfFree() {
  if (buffer_waiters_.empty() || buffers_.in_use() >= options_.buffers_cap) return;
  // Waiters re-run on the ready list, after the current handler returns.
  for (Pair* pair : buffer_waiters_) loop_.ScheduleReady(pair);
  buffer_waiters_.clear();
}

void Worker::AbortAll() {
  while (head_ != nullptr) head_->Abort(CloseCause::kDrained, "closed by the engine");
  connections_.DrainAll();
  // A copy: a tenant with nothing left open removes itself.
  const std::vector<WorkerTenant*> tenants = tenants_;
  for (WorkerTenant* tenant : tenants) tenant->AbortAll();
}

void Worker::AddTenant(WorkerTenant* tenant) {
  if (std::find(tenants_.begin(), tenants_.end(), tenant) == tenants_.end()) {
    tenants_.push_back(tenant);
  }
}

void Worker::RemoveTenant(WorkerTenant* tenant) {
  auto it = std::find(tenants_.begin(), tenants_.end(), tenant);
  if (it != tenants_.end()) tenants_.erase(it);
}

void Worker::AddConnection(ConnectionImpl* connection) {
  connections_.Add(connection);
  stats_.connections_open.Add();
}

void Worker::RemoveConnection(ConnectionImpl* connection) {
  if (connections_.Remove(connection)) stats_.connections_open.Sub();
}

WorkerStats Worker::Snapshot() const {
  WorkerStats s;
  s.pairs_open = stats_.pairs_open.Get();
  s.connections_open = stats_.connections_open.Get();
  s.pairs_closed = stats_.pairs_closed.Get();
  s.accepted = stats_.accepted.Get();
  s.connect_failures = stats_.connect_failures.Get();
  s.bytes_a_to_b = stats_.bytes_a_to_b.Get();
  s.bytes_b_to_a = stats_.bytes_b_to_a.Get();
  s.bytes_spliced = stats_.bytes_spliced.Get();
  s.bytes_copied = stats_.bytes_copied.Get();
  s.pipe_pool_exhausted = stats_.pipe_pool_exhausted.Get();
  s.splice_switches = stats_.splice_switches.Get();
  s.backend_fd_exhausted = stats_.backend_fd_exhausted.Get();
  s.backend_retries = stats_.backend_retries.Get();
  s.no_healthy_backend = stats_.no_healthy_backend.Get();
  s.udp.flows_open = stats_.udp_flows_open.Get();
  s.udp.flows_created = stats_.udp_flows_created.Get();
  s.udp.datagrams_client_to_backend = stats_.udp_datagrams_client_to_backend.Get();
  s.udp.datagrams_backend_to_client = stats_.udp_datagrams_backend_to_client.Get();
  s.udp.bytes_client_to_backend = stats_.udp_bytes_client_to_backend.Get();
  s.udp.bytes_backend_to_client = stats_.udp_bytes_backend_to_client.Get();
  s.udp.receive_drops = stats_.udp_receive_drops.Get();
  s.udp.flow_cap_drops = stats_.udp_flow_cap_drops.Get();
  s.udp.backend_unreachable = stats_.udp_backend_unreachable.Get();
  s.udp.send_drops = stats_.udp_send_drops.Get();
  const PipePoolStats pipes = pipes_.stats();
  s.pipes_in_use = pipes.in_use;
  s.pipes_pooled = pipes.pooled;
  const BufferPoolStats buffers = buffers_.stats();
  s.buffers_in_use = buffers.in_use;
  s.buffers_pooled = buffers.pooled;
  return s;
}

}  // namespace zrelay
