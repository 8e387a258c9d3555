// zrelayd's command line: parsed into a config, with usage errors that name
// the flag and the bad value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/address.h"
#include "engine/result.h"
#include "relay/relay.h"
#include "ssl/tls_context.h"

namespace zrelay {

struct ZrelaydConfig {
  // --config FILE: run the listeners of a configuration file; --check FILE:
  // only check it. Either one excludes every other flag (the file holds all
  // the settings).
  std::string config_file;
  std::string check_file;
  // --upgrade, with --config only: take the listening sockets of the zrelayd
  // serving the file's upgrade_socket, then let that one drain.
  bool upgrade = false;
  Address listen;
  Address backend;
  // The host of --backend as typed ("localhost", "10.0.0.1"): with
  // --backend-tls and no --backend-sni, a name is sent as SNI and verified.
  std::string backend_host;
  EngineOptions engine;
  Duration connect_timeout = seconds(5);
  Duration drain_grace = seconds(10);
  // Open client connections at most; 0: derived from the fd limit.
  uint64_t max_connections = 0;
  std::string user;         // non-empty: drop privileges to this user once set up
  bool log_closes = false;  // one line per closed pair on stderr
  // TLS termination (clients): set when at least one --tls-cert is given.
  bool tls = false;
  TlsServerConfig tls_server;
  // TLS origination (backend).
  bool backend_tls = false;
  TlsClientConfig tls_backend;
  bool help = false;
};

// Parses argv[1..]. Errors are usage errors: the message names the flag and
// quotes the bad value.
Result<ZrelaydConfig> ParseZrelaydFlags(const std::vector<std::string>& args);

// The --help text, generated from the same flag table the parser uses.
std::string ZrelaydUsage();

}  // namespace zrelay
