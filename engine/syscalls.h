// Syscalls: the seam between zrelay's data path and the kernel.
//
// Every data-path syscall goes through a Syscalls object owned by the event
// loop, so a test can swap in one that injects EAGAIN, EINTR, EPIPE or ENOSYS
// on a chosen call (Folly's per-socket syscall override, made per loop).
// Calls return SysResult: the kernel's return value and, when it is -1, the
// errno. EAGAIN is an outcome, not an error.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>

namespace zrelay {

struct SysResult {
  ssize_t rc = 0;  // the syscall's return value; -1 on failure
  int err = 0;     // errno when rc == -1, else 0

  bool ok() const { return rc >= 0; }
  bool would_block() const { return rc < 0 && (err == EAGAIN || err == EWOULDBLOCK); }
};

class Syscalls {
 public:
  virtual ~Syscalls() = default;

  virtual SysResult Read(int fd, void* buf, size_t len);
  virtual SysResult Readv(int fd, const struct iovec* iov, int iovcnt);
  virtual SysResult Writev(int fd, const struct iovec* iov, int iovcnt);
  // send(2) with MSG_NOSIGNAL: a peer that is gone is EPIPE, never SIGPIPE.
  virtual SysResult Send(int fd, const void* buf, size_t len);
  virtual SysResult Splice(int fd_in, int fd_out, size_t len, unsigned int flags);
  virtual SysResult Shutdown(int fd, int how);

  // The process-wide pass-through implementation.
  static Syscalls& Real();
};

}  // namespace zrelay
