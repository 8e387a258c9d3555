#include "relay/worker.h"

#include <algorithm>

#include "relay/pair.h"

namespace zrelay {

Worker::Worker(size_t index, EventLoop& loop, const EngineOptions& options)
    : index_(index),
      loop_(loop),
      options_(options),
      pipes_(options.pipe_size, options.pipe_pool_cap),
      buffers_(options.buffer_size, options.buffers_cap),
      env_{loop.sys(), pipes_, buffers_, stats_, options.buffer_size / 2} {}

Worker::~Worker() {
  while (head_ != nullptr) delete head_;  // ~Pair unlinks itself
}

void Worker::Adopt(Pair* pair) {
  pair->list_prev = nullptr;
  pair->list_next = head_;
  if (head_) head_->list_prev = pair;
  head_ = pair;
  ++open_;
  ++stats_.pairs_open;
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
  --stats_.pairs_open;
  ++stats_.pairs_closed;
  auto it = std::find(buffer_waiters_.begin(), buffer_waiters_.end(), pair);
  if (it != buffer_waiters_.end()) buffer_waiters_.erase(it);
}

void Worker::WaitForBuffer(Pair* pair) {
  if (std::find(buffer_waiters_.begin(), buffer_waiters_.end(), pair) == buffer_waiters_.end()) {
    buffer_waiters_.push_back(pair);
  }
}

void Worker::WakeBufferWaitersIfFree() {
  if (buffer_waiters_.empty() || buffers_.stats().in_use >= options_.buffers_cap) return;
  // Waiters re-run on the ready list, after the current handler returns.
  for (Pair* pair : buffer_waiters_) loop_.ScheduleReady(pair);
  buffer_waiters_.clear();
}

void Worker::AbortAll(CloseCause cause) {
  while (head_ != nullptr) head_->Abort(cause, "closed by the engine");
}

WorkerStats Worker::Snapshot() const {
  WorkerStats s = stats_;
  s.pipes_in_use = pipes_.stats().in_use;
  s.pipes_pooled = pipes_.stats().pooled;
  s.buffers_in_use = buffers_.stats().in_use;
  s.buffers_pooled = buffers_.stats().pooled;
  return s;
}

}  // namespace zrelay
