// What zrelayd prints about itself: the --check summary, the start-up lines
// and the totals at exit (stderr, each line starting "zrelayd: ").
#pragma once

#include <string>

#include "engine/address.h"
#include "engine/result.h"
#include "relay/relay.h"
#include "tools/config/config.h"
#include "tools/zrelayd_process.h"

namespace zrelay {

// "zrelayd.toml: OK, 2 listeners, 5 backends" (route backends counted), then
// ", 3 routes by SNI", ", proxy protocol accepted on 1 listener" and ", UDP
// on 1 listener" when any.
std::string CheckSummary(const std::string& path, const FileConfig& config);

// The fd limit as RaiseFdLimit left it, or why it could not be raised.
void PrintFdLimit(const Result<FdLimit>& fd_limit);

// "listener web: listening on 127.0.0.1:8080, [::1]:8080; 3 backends,
// least-conn; proxy protocol accepted; 2 routes by SNI" (the last two when
// set; "; udp" ends a UDP listener's line), with `bound` (the kernel's port
// for :0) as the first address.
void PrintListener(const ListenerConfig& listener, const Result<Address>& bound);

// The engine's counters, summed over the workers; a second line ("udp
// totals: ...") when UDP listeners had flows or drops.
void PrintTotals(const EngineStats& stats);

}  // namespace zrelay
