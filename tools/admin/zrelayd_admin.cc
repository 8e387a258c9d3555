#include "tools/admin/zrelayd_admin.h"

#include "tools/log/log.h"

namespace zrelay {

Result<std::unique_ptr<AdminServer>> StartAdmin(const FileConfig& config, const Engine& engine) {
  if (!config.admin_listen) return std::unique_ptr<AdminServer>();
  AdminServerOptions options;
  options.address = *config.admin_listen;
  options.metrics = [&engine] { return engine.Metrics(); };
  auto server = AdminServer::Start(std::move(options));
  if (!server) return Error(server.error().code(), "admin: " + server.error().message());
  Logf("admin: listening on %s", server.value()->address().ToString().c_str());
  return server;
}

}  // namespace zrelay
