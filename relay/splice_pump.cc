#include "relay/splice_pump.h"

#include <fcntl.h>

#include <algorithm>

#include "engine/check.h"

namespace zrelay {
namespace {
// SPLICE_F_MOVE is a hint current kernels mostly ignore, but it costs nothing.
constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
}  // namespace

IoResult SpliceIn(Direction& dir, FdWatch& src, Syscalls& sys, size_t max) {
  KernelPipe& pipe = *dir.pipe;
  // A full pipe would ask splice() for 0 bytes, and its 0 would read as EOF.
  ZR_CHECK(pipe.bytes < pipe.capacity, "splice into a full pipe (%zu of %zu bytes)", pipe.bytes,
           pipe.capacity);
  size_t len = std::min(pipe.capacity - pipe.bytes, max);
  SysResult r = sys.Splice(src.fd(), pipe.write_end.get(), len, kSpliceFlags);
  if (r.rc > 0) {
    pipe.bytes += static_cast<size_t>(r.rc);
    return {IoStatus::kOk, static_cast<size_t>(r.rc), 0};
  }
  if (r.rc == 0) return {IoStatus::kEof, 0, 0};
  if (r.would_block()) {
    // EAGAIN means "socket empty" or "pipe full"; only an empty pipe proves
    // the former.
    if (pipe.bytes == 0) {
      src.clear_readable();
    } else {
      dir.pipe_may_be_full = true;
    }
    return {IoStatus::kWouldBlock, 0, 0};
  }
  return {IoStatus::kError, 0, r.err};
}

IoResult SpliceOut(Direction& dir, FdWatch& dst, Syscalls& sys) {
  KernelPipe& pipe = *dir.pipe;
  // An empty pipe would splice 0 bytes, which would read as a closed peer.
  ZR_CHECK(pipe.bytes > 0, "splice out of an empty pipe");
  SysResult r = sys.Splice(pipe.read_end.get(), dst.fd(), pipe.bytes, kSpliceFlags);
  if (r.rc > 0) {
    pipe.bytes -= static_cast<size_t>(r.rc);
    dir.pipe_may_be_full = false;
    return {IoStatus::kOk, static_cast<size_t>(r.rc), 0};
  }
  if (r.would_block()) {
    dst.clear_writable();
    return {IoStatus::kWouldBlock, 0, 0};
  }
  return {IoStatus::kError, 0, r.rc == 0 ? EPIPE : r.err};
}

}  // namespace zrelay
