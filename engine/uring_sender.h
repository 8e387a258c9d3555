// UringSender: a socket's small writes through its loop's io_uring.
//
// A write is copied into a buffer of its own and queued as one send
// (MSG_WAITALL: the kernel finishes it, waiting for room if it must), which
// goes to the kernel with the turn's other requests in the loop's one
// io_uring_enter: no syscall per write. For small request/response traffic
// that halves a relay's kernel entries; bulk writes stay on writev, where a
// copy would cost more than the entry it saves.
//
// One send at a time keeps the byte order (and nothing else may write the
// socket meanwhile: busy() says when). When it completes, the socket's
// watch hears EPOLLOUT, so its owner writes on. A failed send is sticky:
// error() holds its errno.
//
// The buffer and request belong to a self-owned op: destroying the sender
// with a send still queued or in flight detaches it, and it finishes (or
// fails) on its own. Close the socket with EventLoop::CloseFd, which runs
// after the queued send, never close(2) while busy().
#pragma once

#include <sys/uio.h>

#include <cstddef>

#include "engine/uring_buffer.h"
#include "engine/uring_buffered_op.h"

namespace zrelay {

class EventLoop;
class FdWatch;

class UringSender {
 public:
  // Writes at most this many bytes through the ring; more go to writev.
  static constexpr size_t kMaxBytes = kUringBufferBytes;

  explicit UringSender(FdWatch& watch) : watch_(watch) {}
  ~UringSender();
  UringSender(const UringSender&) = delete;
  UringSender& operator=(const UringSender&) = delete;

  // Whether the watch's loop has a ring to send through.
  bool available() const;
  // A send is queued or in flight.
  bool busy() const { return pending_ != nullptr; }
  // The errno of the first send that failed (0: none).
  int error() const { return error_; }

  // Copies `total` (1..kMaxBytes) bytes from `iov` and queues their send.
  // Only when available(), !busy() and error() == 0.
  void Send(const struct iovec* iov, int count, size_t total);

 private:
  using Pending = UringBufferedOp<UringSender>;
  friend Pending;
  // `pending` finished with `res` while this sender still waited for it.
  void Done(int res, Pending& pending);

  FdWatch& watch_;
  Pending* pending_ = nullptr;
  int error_ = 0;
};

}  // namespace zrelay
