// SniRouter: which route (ListenOptions::routes) a TLS server name picks.
//
//   SniRouter router(options.routes);
//   std::optional<size_t> route = router.Match(hello.sni);  // index into routes
//
// An exact name wins over any wildcard; among wildcards the longest suffix
// wins ("*.eu.example" before "*.example"), and among equal ones the route
// listed first. "*.b.example" matches one label or more before ".b.example",
// never "b.example" itself. Names compare case-insensitively (DNS names do).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "relay/relay.h"

namespace zrelay {

// Why `pattern` cannot be a route's server name ("" when it can): empty, or
// a '*' anywhere but as a whole first label ("*.b.example").
std::string ServerNamePatternError(std::string_view pattern);

class SniRouter {
 public:
  SniRouter() = default;
  // The patterns must pass ServerNamePatternError (Engine checks them).
  explicit SniRouter(const std::vector<RouteOptions>& routes);

  // The index of the route for `server_name`; nullopt: none matches (or the
  // name is empty).
  std::optional<size_t> Match(std::string_view server_name) const;

 private:
  struct Wildcard {
    std::string suffix;  // ".b.example", lower case
    size_t route;
  };
  std::unordered_map<std::string, size_t> exact_;  // lower-case name -> route
  std::vector<Wildcard> wildcards_;                // longest suffix first
};

}  // namespace zrelay
