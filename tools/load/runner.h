// Runner: one whole zrelay-load run on a WorkerPool, from the calling
// (non-worker) thread: start the workers' sessions, watch the clock and the
// counters, print a progress line a second, stop, gather the report.
#pragma once

#include <cstdio>
#include <functional>

#include "engine/address.h"
#include "engine/result.h"
#include "tools/load/backend.h"
#include "tools/load/config.h"
#include "tools/load/report.h"
#include "tools/load/run_hooks.h"

namespace zrelay::load {

// Runs a client mode (bulk, rr, connect, idle; udp is handed to
// RunUdpClient) to its end. Setup failures (a pool that cannot start, not
// enough fds for --conns, an unreadable --relay-pid, a TLS context that
// cannot be built) are an Error naming the flag or thing; what goes wrong
// during the run is in the Report.
Result<Report> RunClient(const Config& config, const RunHooks& hooks = {});

// Serves as the backend (TCP, or with --udp the UDP echo) until --duration
// has passed or `interrupted`. `on_listening` gets the bound address (with
// the kernel's port for :0) once the listener is up.
Result<BackendTotals> RunBackend(const Config& config, const RunHooks& hooks,
                                 const std::function<void(const Address&)>& on_listening);

std::string FormatBackendTotals(const BackendTotals& totals, double seconds, bool json);

}  // namespace zrelay::load
