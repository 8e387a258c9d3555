// RingBuffer: a fixed-capacity byte ring for one direction of a copy pump.
//
// Plain legs fill and drain it with readv/writev over its two halves (one
// syscall per side even when the data wraps); TLS legs use the contiguous
// spans, since SSL_read/SSL_write take one buffer.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <memory>

namespace zrelay {

class RingBuffer {
 public:
  explicit RingBuffer(size_t capacity);
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;

  size_t capacity() const { return capacity_; }
  size_t size() const { return size_; }
  size_t free_space() const { return capacity_ - size_; }
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ == capacity_; }

  // Free space as at most two iovecs, in write order; returns how many (0 when
  // full). Follow with Commit(bytes actually written into them).
  int FreeIovecs(struct iovec iov[2]);
  void Commit(size_t bytes);

  // Buffered data as at most two iovecs, in read order; returns how many (0
  // when empty). Follow with Consume(bytes actually taken from them).
  int DataIovecs(struct iovec iov[2]);
  void Consume(size_t bytes);

  // The first contiguous run of free space / of data (for SSL_read/write).
  struct iovec FreeSpan();
  struct iovec DataSpan();

  // Drops all data and rewinds, so the next use starts contiguous.
  void Clear() { head_ = size_ = 0; }

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_;
  size_t head_ = 0;  // index of the first buffered byte
  size_t size_ = 0;
};

}  // namespace zrelay
