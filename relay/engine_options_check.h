// The checks Engine::Start and Engine::Listen run on their options (each
// error names the field), and the max_connections a listener derives from
// RLIMIT_NOFILE when ListenOptions::max_connections is 0.
#pragma once

#include <cstddef>

#include "engine/result.h"
#include "relay/relay.h"

namespace zrelay {

Status ValidateOptions(const EngineOptions& o);
// The checks common to both protocols (a UDP listener's own,
// UdpListenOptionsError, come first).
Status ValidateListenOptions(const ListenOptions& o);
// ListenOptions::max_connections = 0, worked out from RLIMIT_NOFILE.
Result<size_t> DerivedMaxConnections(const EngineOptions& engine, size_t workers,
                                     Protocol protocol);

}  // namespace zrelay
