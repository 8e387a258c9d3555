// Process-wide setup for zrelayd: the fd limit and the user it runs as.
#pragma once

#include <cstdint>
#include <string>

#include "engine/result.h"

namespace zrelay {

struct FdLimit {
  uint64_t before = 0;  // soft RLIMIT_NOFILE at start
  uint64_t after = 0;   // soft limit now (the hard limit once raised)
};

// Raises the soft RLIMIT_NOFILE to the hard limit: every pair holds two fds,
// and the usual soft limit of 1024 caps a relay at ~500 pairs. The error
// names both limits.
Result<FdLimit> RaiseFdLimit();

// Runs the process (all its threads) as `user` from here on: its groups
// (initgroups), then its gid, then its uid, and checks that root cannot be
// regained. Needs root. Errors name the user and the step that failed.
Status DropPrivileges(const std::string& user);

}  // namespace zrelay
