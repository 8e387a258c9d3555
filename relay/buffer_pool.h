// BufferPool: a worker's ring buffers, lent to a copy-pump direction while it
// has bytes in flight and taken back when empty (idle pairs hold none).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "relay/relaxed_counter.h"
#include "relay/ring_buffer.h"

namespace zrelay {

struct BufferPoolStats {
  uint64_t in_use = 0;
  uint64_t pooled = 0;
  uint64_t exhausted = 0;  // Take() refused at the cap
};

class BufferPool {
 public:
  // `cap`: buffers in use at most (pooled ones are reused first). Pooled
  // buffers beyond
  // `keep` are freed on return, so a burst does not pin memory forever.
  BufferPool(size_t buffer_size, size_t cap, size_t keep = 256);

  // A cleared ring, or null at the cap (the caller waits and retries).
  std::unique_ptr<RingBuffer> Take();
  void Return(std::unique_ptr<RingBuffer> ring);

  size_t buffer_size() const { return buffer_size_; }
  // Any thread: the pool's worker writes the counters, Engine::Metrics
  // reads them while it runs.
  BufferPoolStats stats() const;
  size_t in_use() const { return counters_.in_use.Get(); }

 private:
  size_t buffer_size_;
  size_t cap_;
  size_t keep_;
  std::vector<std::unique_ptr<RingBuffer>> free_;
  struct {
    RelaxedCounter in_use, pooled, exhausted;
  } counters_;
};

}  // namespace zrelay
