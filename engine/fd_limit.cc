#include "engine/fd_limit.h"

#include <dirent.h>
#include <sys/resource.h>

#include <cerrno>

namespace zrelay {

Result<FdUsage> CurrentFdUsage() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return Error::FromErrno(errno, "getrlimit NOFILE");
  FdUsage usage;
  // RLIM_INFINITY cannot really be: the kernel caps it at fs.nr_open.
  usage.soft_limit = limit.rlim_cur == RLIM_INFINITY ? size_t{1} << 30 : limit.rlim_cur;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return Error::FromErrno(errno, "count open fds: opendir /proc/self/fd");
  size_t entries = 0;
  while (const struct dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++entries;
  }
  ::closedir(dir);
  usage.open = entries > 0 ? entries - 1 : 0;  // minus the directory's own fd
  return usage;
}

}  // namespace zrelay
