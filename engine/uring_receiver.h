// UringReceiver: a socket's reads through its loop's io_uring.
//
// Once the socket's watch says readable, Receive() queues one recv with
// MSG_DONTWAIT into a buffer of the receiver's own; it goes to the kernel
// with the turn's other requests in the loop's one io_uring_enter, and the
// kernel runs it there at once (the bytes are already queued), so a read
// costs no syscall of its own. When it completes, the watch's handler runs
// (EventLoop::Notify) and takes the bytes with Take().
//
// Nothing waits on an idle socket: MSG_DONTWAIT makes a recv that finds no
// bytes end with EAGAIN instead of waiting in the kernel, so a receive never
// holds a buffer past the turn it ran in, and the watch's readiness says
// when to receive again. Each receive takes a buffer (a reused UringBuffer)
// and gives it back once its bytes are taken.
//
// One receive at a time keeps the byte order, and nothing else may read the
// socket while one is on its way (busy()) or its bytes wait (buffered()):
// a splice or read(2) then would overtake them. EOF and errors are sticky.
//
// The buffer and request belong to a self-owned op: destroying the receiver
// with a receive in flight detaches it, and it finishes on its own.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <memory>

#include "engine/uring_buffer.h"
#include "engine/uring_buffered_op.h"

namespace zrelay {

class FdWatch;

class UringReceiver {
 public:
  // Receives at most this many bytes at a time: small messages, one recv
  // each; a bulk stream needs several (the copy path's readv would take
  // up to a ring at once, but no more cheaply per byte).
  static constexpr size_t kMaxBytes = kUringBufferBytes;

  explicit UringReceiver(FdWatch& watch) : watch_(watch) {}
  ~UringReceiver();
  UringReceiver(const UringReceiver&) = delete;
  UringReceiver& operator=(const UringReceiver&) = delete;

  // Whether the watch's loop has a ring to receive through.
  bool available() const;
  // A receive is queued or in flight.
  bool busy() const { return pending_ != nullptr; }
  // Bytes received and not taken yet.
  size_t buffered() const { return len_ - taken_; }
  // The peer's EOF came (after the bytes still buffered).
  bool eof() const { return eof_; }
  // The errno of the receive that failed (0: none).
  int error() const { return error_; }
  // Take(), eof() or error() has something for the reader.
  bool has_result() const { return buffered() > 0 || eof_ || error_ != 0; }
  // The last receive got all the bytes it asked for: more may be queued.
  bool filled() const { return filled_; }

  // Queues a receive of up to `max` (1..kMaxBytes) bytes. Only when
  // available(), !busy() and !has_result().
  void Receive(size_t max);
  // Copies up to `max` buffered bytes into `iov` and drops them from the
  // buffer. Returns how many.
  size_t Take(const struct iovec* iov, int count, size_t max);

 private:
  using Pending = UringBufferedOp<UringReceiver>;
  friend Pending;
  // `pending` finished with `res` while this receiver still waited for it.
  void Done(int res, Pending& pending);

  FdWatch& watch_;
  Pending* pending_ = nullptr;
  UringBuffer bytes_;              // the last receive's buffer, while not all taken
  size_t len_ = 0;                 // bytes it received
  size_t taken_ = 0;               // of which Take() has copied out
  bool filled_ = false;
  bool eof_ = false;
  int error_ = 0;
};

}  // namespace zrelay
