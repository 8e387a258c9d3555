// Transport: how a pump reads and writes one leg (HAProxy's xprt_ops with
// its rcv_pipe/snd_pipe, Envoy's TransportSocket). A plain leg and a TLS leg
// are two implementations. A leg moves bytes two ways: through a ring in
// user space (Read/Write) and through a kernel pipe (ReadToPipe/
// WriteFromPipe, splice on a plain socket); the pump picks the vehicle, the
// transport only moves bytes, so any way of reaching the kernel (epoll and
// syscalls today) can implement both.
//
// What a transport does and what it leaves to the pump: the transport
// accounts the bytes it moves in the vehicle it was given (ring commit and
// consume, KernelPipe::bytes) and keeps its own fd's readiness. What a
// result means for the direction is the pump's: a pipe that may be full
// (kWouldBlock from ReadToPipe with bytes in the pipe), the byte counters,
// watermarks, and the fallback to copying when a leg cannot splice.
//
// A transport owns the readiness logic of its leg: it clears the FdWatch
// flags when the kernel says EAGAIN, and ReadReady()/WriteReady() say whether
// a call could make progress now (a TLS read may wait for the socket to be
// writable, and may have decrypted bytes buffered that no epoll event will
// announce).
#pragma once

#include <cerrno>
#include <cstddef>
#include <string>

#include "relay/pipe_pool.h"
#include "relay/ring_buffer.h"

namespace zrelay {

enum class IoStatus {
  kOk,          // `bytes` moved (> 0), or a Handshake/Shutdown step finished
  kWouldBlock,  // nothing possible now; an fd event will say when to retry
  kEof,         // the peer finished sending (FIN, or TLS close_notify)
  kError,       // the leg is broken: `err` is the errno (0 for TLS protocol errors)
};

struct IoResult {
  IoStatus status = IoStatus::kOk;
  size_t bytes = 0;
  int err = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Finishes the TLS handshake if one is pending; plain legs return kOk.
  // kWouldBlock until done; kError (with error_detail()) on failure.
  virtual IoResult Handshake() = 0;

  // Reads up to `max` bytes (> 0) into `ring`'s free space: a rate limit or
  // a watermark may allow less than the ring holds. kOk: bytes > 0 were
  // committed to the ring; kWouldBlock; kEof; kError. Never called with a
  // full ring.
  virtual IoResult Read(RingBuffer& ring, size_t max) = 0;
  // Writes from `ring`'s data and consumes what was written. kOk: bytes > 0;
  // kWouldBlock; kError. Never called with an empty ring.
  virtual IoResult Write(RingBuffer& ring) = 0;
  // Ends this leg's sending side: TLS sends close_notify, then the socket
  // sends FIN. kOk when done; kWouldBlock to be called again; kError.
  virtual IoResult ShutdownWrite() = 0;

  // Whether Read()/Write() could make progress now.
  virtual bool ReadReady() const = 0;
  virtual bool WriteReady() const = 0;

  // Moves up to `max` bytes (> 0) from the leg into `pipe`, which has room.
  // kOk: bytes > 0 now in the pipe. kEof. kWouldBlock: with an empty pipe
  // the leg is drained (ReadReady() turns false); with bytes in the pipe the
  // pipe may be full instead, and the leg stays ready. kError: errno in err;
  // ENOSYS/EINVAL mean this leg cannot splice (the pump then copies).
  // A leg that cannot splice keeps this refusal: ENOSYS, nothing moved.
  virtual IoResult ReadToPipe(KernelPipe& /*pipe*/, size_t /*max*/) {
    return {IoStatus::kError, 0, ENOSYS};
  }
  // Moves `pipe`'s bytes (> 0) to the leg. kOk: bytes > 0 delivered;
  // kWouldBlock; kError (EPIPE/ECONNRESET: the peer is gone). Refused with
  // ENOSYS by a leg that cannot splice.
  virtual IoResult WriteFromPipe(KernelPipe& /*pipe*/) { return {IoStatus::kError, 0, ENOSYS}; }

  // Whether ReadToPipe/WriteFromPipe work here: plain sockets splice; TLS
  // legs go through user space and refuse the pipe calls.
  virtual bool can_splice() const = 0;
  // close() alone ends this leg's sending side cleanly (a plain socket's
  // FIN); a TLS leg needs ShutdownWrite() for its close_notify.
  virtual bool close_sends_fin() const { return false; }
  // A read through the loop's ring is on its way to the pump: queued, or
  // its bytes (or the EOF or error it met) not all taken yet.
  virtual bool receiving_now() const { return false; }
  // EOF came without close_notify (a truncation attack or a careless peer).
  virtual bool truncated() const { return false; }
  // Why the last kError happened, in words (OpenSSL's error queue, verify
  // result). Empty for plain legs: errno says it all.
  virtual std::string error_detail() const { return {}; }
};

}  // namespace zrelay
