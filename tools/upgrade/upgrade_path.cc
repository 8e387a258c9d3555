#include "tools/upgrade/upgrade_path.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tools/upgrade/wire.h"

namespace zrelay::upgrade {
namespace {

Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return Error::Invalid("upgrade socket '" + path + "': a path of 1 to " +
                          std::to_string(sizeof(address.sun_path) - 1) + " bytes");
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

}  // namespace

Status ReplaceStalePath(const std::string& path) {
  Result<UniqueFd> probe = ConnectToPath(path);
  if (probe.ok() || probe.error().code().value() == EAGAIN) {
    return CodedError(EADDRINUSE, "upgrade socket '" + path +
                                      "': a running process serves it (start the new one with "
                                      "--upgrade to take over from it)");
  }
  const int err = probe.error().code().value();
  if (err == ENOENT) return Status::Ok();
  if (err != ECONNREFUSED) return probe.error();
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status::Ok()
                           : Error::FromErrno(errno, "upgrade socket '" + path + "': lstat");
  }
  if (!S_ISSOCK(st.st_mode)) {
    return CodedError(EEXIST, "upgrade socket '" + path + "': exists and is not a socket");
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Error::FromErrno(errno, "upgrade socket '" + path + "': removing the stale socket");
  }
  return Status::Ok();
}

Result<UniqueFd> ConnectToPath(const std::string& path) {
  Result<sockaddr_un> address = UnixAddress(path);
  if (!address.ok()) return address.error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error::FromErrno(errno, "socket");
  const auto* sa = reinterpret_cast<const sockaddr*>(&address.value());
  while (::connect(fd.get(), sa, sizeof(sockaddr_un)) != 0) {
    if (errno == EINTR) continue;
    return Error::FromErrno(errno, "connect to upgrade socket '" + path + "'");
  }
  return fd;
}

Result<BoundPath> ListenOnPath(const std::string& path) {
  Result<sockaddr_un> address = UnixAddress(path);
  if (!address.ok()) return address.error();
  if (Status s = ReplaceStalePath(path); !s.ok()) return s.error();
  BoundPath bound;
  bound.fd.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!bound.fd) return Error::FromErrno(errno, "socket");
  // Linux gives the file bind() creates the socket inode's mode (less the
  // umask): set before bind, the path is never open to others, not even for
  // a moment.
  if (::fchmod(bound.fd.get(), 0600) != 0) {
    return Error::FromErrno(errno, "upgrade socket '" + path + "': fchmod");
  }
  const auto* sa = reinterpret_cast<const sockaddr*>(&address.value());
  if (::bind(bound.fd.get(), sa, sizeof(sockaddr_un)) != 0) {
    return Error::FromErrno(errno, "upgrade socket '" + path + "': bind");
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return Error::FromErrno(errno, "upgrade socket '" + path + "': lstat");
  }
  bound.device = st.st_dev;
  bound.inode = st.st_ino;
  // A small backlog: one upgrade is served at a time, the rest are refused.
  if (::listen(bound.fd.get(), 4) != 0) {
    ::unlink(path.c_str());
    return Error::FromErrno(errno, "upgrade socket '" + path + "': listen");
  }
  return bound;
}

void RemoveIfOurs(const std::string& path, const BoundPath& bound) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (st.st_dev != bound.device || st.st_ino != bound.inode) return;
  // Best effort: once privileges are dropped the directory may no longer be
  // writable, and a file left behind is stale, which the next start replaces.
  (void)::unlink(path.c_str());
}

}  // namespace zrelay::upgrade
