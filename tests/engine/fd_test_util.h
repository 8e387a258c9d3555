// Helpers for tests that run a process out of fds (in a forked child, so
// the limit cannot hurt the test runner).
#pragma once

#include <sys/resource.h>

#include <string>

#include "engine/worker_pool.h"

namespace zrelay::testing {

// The RLIMIT_NOFILE that leaves exactly `free` fd numbers unused (new fds
// take the lowest free number below the limit). Opens no fd.
rlim_t LimitLeavingFreeFds(int free);

// Descriptors open among the numbers below `below`. Opens no fd.
int OpenFdsBelow(int below);

// UBSan (in the asan config) checks virtual calls against a cache of dynamic
// types; on a miss it probes memory through a pipe(), which fails with
// EMFILE and becomes a false "invalid vptr" report. So before exhausting
// fds, drive a throwaway listener on `pool` through the listener's back-off
// path (accept error -> pause -> retry timer) to fill the cache. Here the
// error is EINVAL from a listening socket shut down under the acceptor,
// which also checks that unexpected accept errors back off rather than
// spin. False (and `why`) when that did not happen.
bool PrimeBackOffPath(WorkerPool& pool, std::string* why);

}  // namespace zrelay::testing
