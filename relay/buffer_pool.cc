#include "relay/buffer_pool.h"

namespace zrelay {

BufferPool::BufferPool(size_t buffer_size, size_t cap, size_t keep)
    : buffer_size_(buffer_size), cap_(cap), keep_(keep) {}

std::unique_ptr<RingBuffer> BufferPool::Take() {
  std::unique_ptr<RingBuffer> ring;
  if (!free_.empty()) {
    ring = std::move(free_.back());
    free_.pop_back();
    counters_.pooled.Sub();
  } else if (counters_.in_use.Get() < cap_) {
    ring = std::make_unique<RingBuffer>(buffer_size_);
  } else {
    counters_.exhausted.Add();
    return nullptr;
  }
  counters_.in_use.Add();
  return ring;
}

BufferPoolStats BufferPool::stats() const {
  BufferPoolStats s;
  s.in_use = counters_.in_use.Get();
  s.pooled = counters_.pooled.Get();
  s.exhausted = counters_.exhausted.Get();
  return s;
}

void BufferPool::Return(std::unique_ptr<RingBuffer> ring) {
  counters_.in_use.Sub();
  ring->Clear();
  if (free_.size() < keep_) {
    free_.push_back(std::move(ring));
    counters_.pooled.Add();
  }
}

}  // namespace zrelay
