#include "tools/load/proc_stats.h"

#include <dirent.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace zrelay::load {

Result<ProcSample> SampleProcess(int pid) {
  const std::string base = "/proc/" + std::to_string(pid);
  const std::string who = "--relay-pid " + std::to_string(pid) + ": ";
  ProcSample sample;

  const std::string status_path = base + "/status";
  FILE* status = std::fopen(status_path.c_str(), "re");
  if (status == nullptr) return Error::FromErrno(errno, who + status_path);
  char line[256];
  bool found = false;
  while (std::fgets(line, sizeof(line), status) != nullptr) {
    unsigned long long kib = 0;
    if (std::sscanf(line, "VmRSS: %llu kB", &kib) == 1) {
      sample.rss_kib = kib;
      found = true;
      break;
    }
  }
  std::fclose(status);
  if (!found) return Error::Invalid(who + status_path + " has no VmRSS line (a zombie?)");

  const std::string fd_path = base + "/fd";
  DIR* dir = ::opendir(fd_path.c_str());
  if (dir == nullptr) return Error::FromErrno(errno, who + fd_path);
  while (struct dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++sample.fds;
  }
  ::closedir(dir);
  return sample;
}

Result<uint64_t> RaiseFdLimit() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return Error::FromErrno(errno, "getrlimit(NOFILE)");
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      return Error::FromErrno(
          errno, "setrlimit(NOFILE) to the hard limit " + std::to_string(limit.rlim_max));
    }
  }
  return static_cast<uint64_t>(limit.rlim_cur);
}

}  // namespace zrelay::load
