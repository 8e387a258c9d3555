#include "tools/config/addresses.h"

#include <algorithm>
#include <string>

namespace zrelay {
namespace {

Error Bad(std::string_view text, std::string_view what) {
  return Error::Invalid("bad address '" + std::string(text) + "': " + std::string(what));
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Only digits and dots: meant as an IPv4 literal (Address::Parse says so too),
// so "10.0.0.300" is a bad literal rather than a host name.
bool LooksLikeIpv4(std::string_view host) {
  return std::all_of(host.begin(), host.end(), [](char c) { return IsDigit(c) || c == '.'; });
}

bool IsLabelChar(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

bool IsLiteral(std::string_view text) {
  if (text.rfind("unix:", 0) == 0 || text.rfind('[', 0) == 0) return true;
  size_t colon = text.rfind(':');
  return colon == std::string_view::npos || LooksLikeIpv4(text.substr(0, colon));
}

}  // namespace

bool IsHostName(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty() || host.size() > 253) return false;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = std::min(host.find('.', start), host.size());
    std::string_view label = host.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' ||
        !std::all_of(label.begin(), label.end(), IsLabelChar)) {
      return false;
    }
    start = dot + 1;
  }
  return true;
}

Result<BackendAddress> ParseBackendAddress(std::string_view text) {
  if (!text.empty() && text.rfind("unix:", 0) != 0 && text.rfind('[', 0) != 0) {
    std::string_view host = text.substr(0, text.rfind(':'));
    if (host.empty() || host == "*") return Bad(text, "a backend needs a host before ':port'");
  }
  if (IsLiteral(text)) {
    Result<Address> address = Address::Parse(text);
    if (!address.ok()) return address.error();
    if (!address->is_unix() && address->port() == 0) {
      return Bad(text, "port 0 is not a backend port (1..65535)");
    }
    return BackendAddress{*address, "", address->port()};
  }
  size_t colon = text.rfind(':');
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.find(':') != std::string_view::npos) {
    return Bad(text, "an IPv6 address must be written in brackets, as in '[::1]:80'");
  }
  if (!IsHostName(host)) return Bad(text, "'" + std::string(host) + "' is not a valid host name");
  if (port.empty()) return Bad(text, "missing port after ':'");
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), IsDigit)) {
    return Bad(text, "port '" + std::string(port) + "' is not a number 1..65535");
  }
  int value = 0;
  for (char c : port) value = value * 10 + (c - '0');
  if (value < 1 || value > 65535) {
    return Bad(text, "port " + std::string(port) + " is out of range (1..65535)");
  }
  return BackendAddress{std::nullopt, std::string(host), value};
}

Result<Address> ParseListenAddress(std::string_view text) {
  if (!IsLiteral(text)) {
    size_t colon = text.rfind(':');
    std::string_view host = text.substr(0, colon);
    if (!host.empty() && host != "*" && host.find(':') == std::string_view::npos) {
      return Bad(text,
                 "listen takes an IP address, ':port' or unix:/path, not a host name (it is not "
                 "resolved)");
    }
  }
  return Address::Parse(text);
}

}  // namespace zrelay
