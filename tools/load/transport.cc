#include "tools/load/transport.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace zrelay::load {

std::string ErrnoText(int err) { return std::strerror(err); }

IoResult PlainTransport::Read(void* buf, size_t len) {
  for (;;) {
    SysResult r = loop_.sys().Read(fd_, buf, len);
    if (r.rc > 0) return IoResult::Ok(static_cast<size_t>(r.rc));
    if (r.rc == 0) return IoResult::Eof();
    if (r.err == EINTR) continue;
    if (r.would_block()) {
      watch_.clear_readable();
      return IoResult::Blocked();
    }
    return IoResult::Fail(r.err, "read: " + ErrnoText(r.err));
  }
}

IoResult PlainTransport::Write(const void* buf, size_t len) {
  for (;;) {
    SysResult r = loop_.sys().Send(fd_, buf, len);
    if (r.rc > 0) return IoResult::Ok(static_cast<size_t>(r.rc));
    if (r.rc == 0) {
      watch_.clear_writable();
      return IoResult::Blocked();
    }
    if (r.err == EINTR) continue;
    if (r.would_block()) {
      watch_.clear_writable();
      return IoResult::Blocked();
    }
    return IoResult::Fail(r.err, "write: " + ErrnoText(r.err));
  }
}

IoResult PlainTransport::ShutdownWrite() {
  SysResult r = loop_.sys().Shutdown(fd_, SHUT_WR);
  if (r.ok() || r.err == ENOTCONN) return IoResult::Ok(0);
  return IoResult::Fail(r.err, "shutdown: " + ErrnoText(r.err));
}

}  // namespace zrelay::load
