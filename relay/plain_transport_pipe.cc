// PlainTransport's pipe half: socket -> pipe and pipe -> socket with
// splice(2), zero copy.
#include <fcntl.h>

#include <algorithm>
#include <cerrno>

#include "engine/check.h"
#include "relay/plain_transport.h"

namespace zrelay {
namespace {
// SPLICE_F_MOVE is a hint current kernels mostly ignore, but it costs nothing.
constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
}  // namespace

IoResult PlainTransport::ReadToPipe(KernelPipe& pipe, size_t max) {
  // A splice would overtake the bytes a ring receive holds; the pump
  // borrows a ring while there are any (relay/pump.cc).
  ZR_CHECK(!receiving_now(), "splice while a ring receive holds bytes of fd %d", watch_.fd());
  // A full pipe would ask splice() for 0 bytes, and its 0 would read as EOF.
  ZR_CHECK(pipe.bytes < pipe.capacity, "splice into a full pipe (%zu of %zu bytes)", pipe.bytes,
           pipe.capacity);
  size_t len = std::min(pipe.capacity - pipe.bytes, max);
  SysResult r = sys_.Splice(watch_.fd(), pipe.write_end.get(), len, kSpliceFlags);
  if (r.rc > 0) {
    pipe.bytes += static_cast<size_t>(r.rc);
    return {IoStatus::kOk, static_cast<size_t>(r.rc), 0};
  }
  if (r.rc == 0) return {IoStatus::kEof, 0, 0};
  if (r.would_block()) {
    // EAGAIN means "socket empty" or "pipe full"; only an empty pipe proves
    // the former. With bytes in the pipe the socket stays readable and the
    // caller decides when the pipe has room again.
    if (pipe.bytes == 0) watch_.clear_readable();
    return {IoStatus::kWouldBlock, 0, 0};
  }
  return {IoStatus::kError, 0, r.err};
}

IoResult PlainTransport::WriteFromPipe(KernelPipe& pipe) {
  // An empty pipe would splice 0 bytes, which would read as a closed peer.
  ZR_CHECK(pipe.bytes > 0, "splice out of an empty pipe");
  if (IoResult wait = WaitForSender(); wait.status != IoStatus::kOk) return wait;
  SysResult r = sys_.Splice(pipe.read_end.get(), watch_.fd(), pipe.bytes, kSpliceFlags);
  if (r.rc > 0) {
    pipe.bytes -= static_cast<size_t>(r.rc);
    return {IoStatus::kOk, static_cast<size_t>(r.rc), 0};
  }
  if (r.would_block()) {
    watch_.clear_writable();
    return {IoStatus::kWouldBlock, 0, 0};
  }
  return {IoStatus::kError, 0, r.rc == 0 ? EPIPE : r.err};
}

}  // namespace zrelay
