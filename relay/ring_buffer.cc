#include "relay/ring_buffer.h"

#include "engine/check.h"

namespace zrelay {

RingBuffer::RingBuffer(size_t capacity)
    : data_(new char[capacity]), capacity_(capacity) {
  ZR_CHECK(capacity > 0, "a ring buffer needs room for at least one byte");
}

int RingBuffer::FreeIovecs(struct iovec iov[2]) {
  if (full()) return 0;
  size_t tail = (head_ + size_) % capacity_;
  if (tail >= head_) {
    // Free space runs from tail to the end, then from 0 to head.
    iov[0] = {data_.get() + tail, capacity_ - tail};
    if (head_ == 0) return 1;
    iov[1] = {data_.get(), head_};
    return 2;
  }
  iov[0] = {data_.get() + tail, head_ - tail};
  return 1;
}

void RingBuffer::Commit(size_t bytes) {
  ZR_CHECK(bytes <= free_space(), "commit %zu bytes into %zu free", bytes, free_space());
  size_ += bytes;
}

int RingBuffer::DataIovecs(struct iovec iov[2]) {
  if (empty()) return 0;
  size_t first = capacity_ - head_;
  if (size_ <= first) {
    iov[0] = {data_.get() + head_, size_};
    return 1;
  }
  iov[0] = {data_.get() + head_, first};
  iov[1] = {data_.get(), size_ - first};
  return 2;
}

void RingBuffer::Consume(size_t bytes) {
  ZR_CHECK(bytes <= size_, "consume %zu bytes of %zu held", bytes, size_);
  size_ -= bytes;
  // An emptied ring rewinds so the next fill is one contiguous run: fewer
  // two-part writev calls and bigger SSL records.
  head_ = size_ == 0 ? 0 : (head_ + bytes) % capacity_;
}

struct iovec RingBuffer::FreeSpan() {
  struct iovec iov[2];
  return FreeIovecs(iov) > 0 ? iov[0] : iovec{nullptr, 0};
}

struct iovec RingBuffer::DataSpan() {
  struct iovec iov[2];
  return DataIovecs(iov) > 0 ? iov[0] : iovec{nullptr, 0};
}

}  // namespace zrelay
