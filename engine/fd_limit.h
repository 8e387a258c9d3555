// How many file descriptors this process may still open.
//
// Used to size limits that must stay below RLIMIT_NOFILE (a listener's
// max_connections): past it, socket() and accept4() fail with EMFILE.
#pragma once

#include <cstddef>

#include "engine/result.h"

namespace zrelay {

struct FdUsage {
  size_t soft_limit = 0;  // RLIMIT_NOFILE's soft limit (the one that applies)
  size_t open = 0;        // descriptors open now, in /proc/self/fd
};

// Errors name what could not be read (getrlimit, /proc/self/fd).
Result<FdUsage> CurrentFdUsage();

}  // namespace zrelay
