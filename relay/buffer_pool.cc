#include "relay/buffer_pool.h"

namespace zrelay {

BufferPool::BufferPool(size_t buffer_size, size_t cap, size_t keep)
    : buffer_size_(buffer_size), cap_(cap), keep_(keep) {}

std::unique_ptr<RingBuffer> BufferPool::Take() {
  std::unique_ptr<RingBuffer> ring;
  if (!free_.empty()) {
    ring = std::move(free_.back());
    free_.pop_back();
    --stats_.pooled;
  } else if (stats_.in_use < cap_) {
    ring = std::make_unique<RingBuffer>(buffer_size_);
  } else {
    ++stats_.exhausted;
    return nullptr;
  }
  ++stats_.in_use;
  return ring;
}

void BufferPool::Return(std::unique_ptr<RingBuffer> ring) {
  --stats_.in_use;
  ring->Clear();
  if (free_.size() < keep_) {
    free_.push_back(std::move(ring));
    ++stats_.pooled;
  }
}

}  // namespace zrelay
