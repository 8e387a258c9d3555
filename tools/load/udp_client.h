// RunUdpClient: one whole `zrelay-load udp` run, from the calling
// (non-worker) thread: a UdpSession per worker (udp_flow.h), a progress line
// a second, the end of the run, the report.
#pragma once

#include "engine/result.h"
#include "tools/load/config.h"
#include "tools/load/report.h"
#include "tools/load/run_hooks.h"

namespace zrelay::load {

// Setup failures (not enough fds for --flows, a pool that cannot start) are
// an Error; what goes wrong during the run is in the Report.
Result<Report> RunUdpClient(const Config& config, const RunHooks& hooks = {});

}  // namespace zrelay::load
