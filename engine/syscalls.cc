#include "engine/syscalls.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace zrelay {
namespace {

// Runs `call` until it does not fail with EINTR; packs the result.
template <typename Fn>
SysResult Retry(Fn call) {
  while (true) {
    ssize_t rc = call();
    if (rc >= 0) return SysResult{rc, 0};
    if (errno != EINTR) return SysResult{-1, errno};
  }
}

}  // namespace

SysResult Syscalls::Read(int fd, void* buf, size_t len) {
  return Retry([&] { return ::read(fd, buf, len); });
}

SysResult Syscalls::Readv(int fd, const struct iovec* iov, int iovcnt) {
  return Retry([&] { return ::readv(fd, iov, iovcnt); });
}

SysResult Syscalls::Writev(int fd, const struct iovec* iov, int iovcnt) {
  return Retry([&] { return ::writev(fd, iov, iovcnt); });
}

SysResult Syscalls::Send(int fd, const void* buf, size_t len) {
  return Retry([&] { return ::send(fd, buf, len, MSG_NOSIGNAL); });
}

SysResult Syscalls::Splice(int fd_in, int fd_out, size_t len, unsigned int flags) {
  return Retry([&] { return ::splice(fd_in, nullptr, fd_out, nullptr, len, flags); });
}

SysResult Syscalls::Shutdown(int fd, int how) {
  return Retry([&] { return static_cast<ssize_t>(::shutdown(fd, how)); });
}

Syscalls& Syscalls::Real() {
  static Syscalls* real = new Syscalls();  // never destroyed: usable during exit
  return *real;
}

}  // namespace zrelay
