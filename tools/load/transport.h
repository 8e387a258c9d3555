// Transport: how a zrelay-load connection reads and writes its socket.
//
// One small contract with two implementations: plain (the loop's Syscalls
// seam: Read / Send) and TLS (ssl/TlsStream, tls_transport.h). The connection
// code above it never knows which it has. Edge-triggered bookkeeping lives
// here: a call that blocks clears the FdWatch flag it waits on, and
// CanRead() / CanWrite() say whether trying again could make progress.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "engine/event_loop.h"

namespace zrelay::load {

enum class IoStatus {
  kOk,       // `bytes` > 0 moved
  kBlocked,  // nothing moved; wait for the next readiness event
  kEof,      // read: the peer finished its direction cleanly
  kError,    // fatal: `err` (errno, or 0 for a TLS failure) and `detail`
};

struct IoResult {
  IoStatus status = IoStatus::kOk;
  size_t bytes = 0;
  int err = 0;
  std::string detail;  // only for kError (and a TLS truncation)

  static IoResult Ok(size_t n) { return {IoStatus::kOk, n, 0, {}}; }
  static IoResult Blocked() { return {IoStatus::kBlocked, 0, 0, {}}; }
  static IoResult Eof() { return {IoStatus::kEof, 0, 0, {}}; }
  static IoResult Fail(int err, std::string detail) {
    return {IoStatus::kError, 0, err, std::move(detail)};
  }
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Finishes any handshake. kOk when done (at once for plain), kBlocked to
  // be called again on the next event, kError/kEof when it failed.
  virtual IoResult Handshake() = 0;
  // Reads up to `len` bytes. kOk, kBlocked, kEof or kError.
  virtual IoResult Read(void* buf, size_t len) = 0;
  // Writes up to `len` bytes (len > 0). kOk with the count taken (maybe
  // fewer), kBlocked or kError. After kBlocked, TLS requires the next Write
  // to offer the same bytes again (the callers always do: they resend from
  // the same stream offset).
  virtual IoResult Write(const void* buf, size_t len) = 0;
  // Ends our direction: close_notify (TLS) then shutdown(SHUT_WR). kOk,
  // kBlocked (call again on the next event) or kError.
  virtual IoResult ShutdownWrite() = 0;
  // Before a graceful close: TLS sends close_notify if it can without
  // waiting (so the peer sees a clean end, not a truncation). Plain: nothing.
  virtual void CloseNotify() {}

  // Whether a Read / Write could make progress now (the socket is not known
  // to be blocked in the direction the last call waited on, or TLS holds
  // decrypted bytes).
  virtual bool CanRead() const = 0;
  virtual bool CanWrite() const = 0;
};

// Plain TCP (or unix) socket through loop.sys(). The fd and the watch stay
// owned by the caller and must outlive the transport.
class PlainTransport final : public Transport {
 public:
  PlainTransport(EventLoop& loop, FdWatch& watch, int fd) : loop_(loop), watch_(watch), fd_(fd) {}

  IoResult Handshake() override { return IoResult::Ok(0); }
  IoResult Read(void* buf, size_t len) override;
  IoResult Write(const void* buf, size_t len) override;
  IoResult ShutdownWrite() override;
  bool CanRead() const override { return watch_.readable(); }
  bool CanWrite() const override { return watch_.writable(); }

 private:
  EventLoop& loop_;
  FdWatch& watch_;
  int fd_;
};

// errno text, e.g. "Connection reset by peer".
std::string ErrnoText(int err);

}  // namespace zrelay::load
