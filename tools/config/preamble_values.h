// The values of zrelayd's PROXY protocol and SNI routing keys, each parsed
// from its text with an error that quotes it (the key path is the caller's).
#pragma once

#include <string>
#include <string_view>

#include "engine/result.h"
#include "relay/relay.h"

namespace zrelay {

// proxy_protocol = "accept" (the only value: a listener never sends one
// to its clients). True on success.
Result<bool> ParseProxyProtocol(std::string_view text);

// send_proxy = "v1" or "v2".
Result<BackendOptions::SendProxy> ParseSendProxy(std::string_view text);

// route_by = "sni".
Result<RouteBy> ParseRouteBy(std::string_view text);

// A route's server name: a host name ("a.example") or a wildcard ("*." and a
// host name), lowercased, as the ClientHello compares them. No trailing dot:
// a ClientHello's name never has one, so it would never match.
Result<std::string> ParseServerNamePattern(std::string_view text);

}  // namespace zrelay
