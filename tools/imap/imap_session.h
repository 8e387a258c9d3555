// One IMAP client of zrelay-imap, from the greeting to the relayed pair:
// the gateway speaks for itself (greeting, CAPABILITY, STARTTLS) until a
// LOGIN names the user, then logs in at that user's backend and hands both
// connections to the engine, which relays the rest of the session.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "engine/address.h"
#include "engine/clock.h"
#include "relay/connection.h"

namespace zrelay::imap {

struct Backend {
  Address address;
  std::string host;  // as given: the name verified with --backend-tls
};

struct GatewayConfig {
  std::map<std::string, Backend> routes;   // user name -> backend
  std::optional<Backend> default_backend;  // users without a route
  SSL_CTX* server_tls = nullptr;           // STARTTLS towards clients
  SSL_CTX* backend_tls = nullptr;          // null: plain backends
  // The whole protocol phase is bounded: each read, write, handshake and
  // connect of it.
  Duration timeout = seconds(60);
};

// Serves `client` on its worker. `tls`: it came in on the implicit-TLS
// listener, already handshaken. `config` outlives every client.
void ServeClient(const GatewayConfig& config, ConnectionPtr client, bool tls);

}  // namespace zrelay::imap
