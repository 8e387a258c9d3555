#include "tools/zrelayd_process.h"

#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace zrelay {
namespace {

std::string Errno(const char* call) { return std::string(call) + ": " + std::strerror(errno); }

}  // namespace

Result<FdLimit> RaiseFdLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
    return Error::Invalid("fd limit: " + Errno("getrlimit"));
  FdLimit result{limit.rlim_cur, limit.rlim_cur};
  if (limit.rlim_cur == limit.rlim_max) return result;
  rlim_t soft = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return Error::Invalid("fd limit: raising the soft limit " + std::to_string(soft) +
                          " to the hard limit " + std::to_string(limit.rlim_max) + ": " +
                          Errno("setrlimit"));
  }
  result.after = limit.rlim_max;
  return result;
}

Status DropPrivileges(const std::string& user) {
  auto fail = [&user](const std::string& what) {
    return Error::Invalid("--user '" + user + "': " + what);
  };
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  passwd entry{};
  passwd* found = nullptr;
  int err = ::getpwnam_r(user.c_str(), &entry, buf.data(), buf.size(), &found);
  if (found == nullptr) {
    return fail(err == 0 ? "no such user" : std::string("getpwnam_r: ") + std::strerror(err));
  }
  uid_t uid = entry.pw_uid;
  gid_t gid = entry.pw_gid;
  // Groups first and uid last: once the uid is dropped, nothing else may change.
  if (::initgroups(entry.pw_name, gid) != 0) return fail(Errno("initgroups"));
  if (::setgid(gid) != 0) return fail(Errno("setgid"));
  if (::setuid(uid) != 0) return fail(Errno("setuid"));
  if (::getuid() != uid || ::geteuid() != uid || ::getgid() != gid || ::getegid() != gid) {
    return fail("the uid or gid did not change");
  }
  if (uid != 0 && (::setuid(0) == 0 || ::seteuid(0) == 0)) return fail("root could be regained");
  return Status::Ok();
}

}  // namespace zrelay
