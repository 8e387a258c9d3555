// What zrelay-load reads about processes: a relay's memory and fds (idle
// mode), and its own fd limit.
#pragma once

#include <cstdint>

#include "engine/result.h"

namespace zrelay::load {

struct ProcSample {
  uint64_t rss_kib = 0;  // VmRSS from /proc/PID/status
  uint64_t fds = 0;      // entries in /proc/PID/fd
};

// Errors name the pid and the file ("--relay-pid 123: /proc/123/status: No
// such file or directory").
Result<ProcSample> SampleProcess(int pid);

// Raises the soft RLIMIT_NOFILE to the hard limit. Returns the new soft limit.
Result<uint64_t> RaiseFdLimit();

}  // namespace zrelay::load
