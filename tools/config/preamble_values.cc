#include "tools/config/preamble_values.h"

#include <cctype>

#include "tools/config/addresses.h"
#include "tools/config/toml_reader.h"

namespace zrelay {

Result<bool> ParseProxyProtocol(std::string_view text) {
  if (text == "accept") return true;
  return Error::Invalid("expected \"accept\", got " + QuoteString(text));
}

Result<BackendOptions::SendProxy> ParseSendProxy(std::string_view text) {
  if (text == "v1") return BackendOptions::SendProxy::kV1;
  if (text == "v2") return BackendOptions::SendProxy::kV2;
  return Error::Invalid("expected \"v1\" or \"v2\", got " + QuoteString(text));
}

Result<RouteBy> ParseRouteBy(std::string_view text) {
  if (text == "sni") return RouteBy::kSni;
  return Error::Invalid("expected \"sni\", got " + QuoteString(text));
}

Result<std::string> ParseServerNamePattern(std::string_view text) {
  std::string_view host = text.substr(0, 2) == "*." ? text.substr(2) : text;
  if (!IsHostName(host) || host.back() == '.') {
    return Error::Invalid(
        "expected a server name (\"a.example\") or a wildcard (\"*.example\"), got " +
        QuoteString(text));
  }
  std::string name(text);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

}  // namespace zrelay
