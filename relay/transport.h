// Transport: how a pump reads and writes one leg (HAProxy's xprt_ops,
// Envoy's TransportSocket). A plain leg and a TLS leg are two
// implementations; the splice path (relay/splice_pump.h) works on the plain
// leg's fd directly, as HAProxy's rcv_pipe/snd_pipe do.
//
// A transport owns the readiness logic of its leg: it clears the FdWatch
// flags when the kernel says EAGAIN, and ReadReady()/WriteReady() say whether
// a call could make progress now (a TLS read may wait for the socket to be
// writable, and may have decrypted bytes buffered that no epoll event will
// announce).
#pragma once

#include <cstddef>
#include <string>

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

  // Reads into `ring`'s free space. kOk: bytes > 0 were committed to the
  // ring; kWouldBlock; kEof; kError. Never called with a full ring.
  virtual IoResult Read(RingBuffer& ring) = 0;
  // Writes from `ring`'s data and consumes what was written. kOk: bytes > 0;
  // kWouldBlock; kError. Never called with an empty ring.
  virtual IoResult Write(RingBuffer& ring) = 0;
  // Ends this leg's sending side: TLS sends close_notify, then the socket
  // sends FIN. kOk when done; kWouldBlock to be called again; kError.
  virtual IoResult ShutdownWrite() = 0;

  // Whether Read()/Write() could make progress now.
  virtual bool ReadReady() const = 0;
  virtual bool WriteReady() const = 0;

  // Plain sockets splice; TLS legs go through user space.
  virtual bool can_splice() const = 0;
  // close() alone ends this leg's sending side cleanly (a plain socket's
  // FIN); a TLS leg needs ShutdownWrite() for its close_notify.
  virtual bool close_sends_fin() const { return false; }
  // EOF came without close_notify (a truncation attack or a careless peer).
  virtual bool truncated() const { return false; }
  // Why the last kError happened, in words (OpenSSL's error queue, verify
  // result). Empty for plain legs: errno says it all.
  virtual std::string error_detail() const { return {}; }
};

}  // namespace zrelay
