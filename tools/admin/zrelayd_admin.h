// zrelayd's [admin] section: the admin endpoint serving the engine's
// metrics, started once the listeners are up and stopped after the drain.
#pragma once

#include <memory>

#include "engine/result.h"
#include "relay/relay.h"
#include "tools/admin/admin_server.h"
#include "tools/config/config.h"

namespace zrelay {

// Starts the endpoint at config.admin_listen and logs "admin: listening on
// ADDR"; nullptr when the file sets no [admin]. The error of an address that
// cannot be bound names it. `engine` must outlive the server.
Result<std::unique_ptr<AdminServer>> StartAdmin(const FileConfig& config, const Engine& engine);

}  // namespace zrelay
