// Addresses as zrelayd's configuration file writes them, checked without
// resolving anything: parsing a config must not block on DNS, and the engine
// resolves backend host names later, off the event loops.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "engine/address.h"
#include "engine/result.h"

namespace zrelay {

// RFC 1123 host name shape (dot-separated labels of letters, digits and '-'),
// plus '_' (container and service-discovery names use it, and getaddrinfo
// accepts it). A trailing dot (fully qualified) is fine.
bool IsHostName(std::string_view host);

// A backend address, split. Exactly one of `literal` and `host` is set.
struct BackendAddress {
  std::optional<Address> literal;  // "10.0.0.1:80", "[::1]:80", "unix:/run/app.sock"
  std::string host;                // "app1.internal" in "app1.internal:9000"
  int port = 0;                    // 1..65535; 0 for unix sockets
};

// "host:port" (IsHostName), "IPv4:port", "[IPv6]:port" or "unix:/path"; the port is 1..65535.
// Errors quote the text, as Address::Parse does ("bad address 'x': ...").
Result<BackendAddress> ParseBackendAddress(std::string_view text);

// What Address::Parse accepts except host names: "IPv4:port", "[IPv6]:port",
// ":port" or "*:port" (any IPv4 address), "unix:/path". Port 0 lets the
// kernel choose.
Result<Address> ParseListenAddress(std::string_view text);

}  // namespace zrelay
