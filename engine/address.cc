#include "engine/address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

namespace zrelay {
namespace {

constexpr std::string_view kUnixPrefix = "unix:";

Error Bad(std::string_view text, std::string_view what) {
  std::string message = "bad address '";
  message.append(text);
  message += "': ";
  message.append(what);
  return Error::Invalid(std::move(message));
}

// Parses the text after the last ':' as a TCP port (0..65535).
Result<int> ParsePort(std::string_view text, std::string_view port) {
  if (port.empty()) return Bad(text, "missing port after ':'");
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Bad(text, "port '" + std::string(port) + "' is not a number");
  }
  // More than 5 digits cannot be valid; checking first avoids overflow.
  int value = 0;
  if (port.size() <= 5) {
    for (char c : port) value = value * 10 + (c - '0');
  }
  if (port.size() > 5 || value > 65535) {
    return Bad(text, "port " + std::string(port) + " is out of range (0..65535)");
  }
  return value;
}

Result<Address> ParseUnix(std::string_view text) {
  std::string_view path = text.substr(kUnixPrefix.size());
  struct sockaddr_un sun {};
  sun.sun_family = AF_UNIX;
  const bool abstract = !path.empty() && path[0] == '@';
  std::string_view name = abstract ? path.substr(1) : path;
  if (name.empty()) {
    return Bad(text, abstract ? "abstract unix socket name is empty" : "unix socket path is empty");
  }
  // A filesystem path needs room for its terminating NUL; an abstract name
  // takes the leading NUL byte instead.
  if (name.size() + 1 > sizeof(sun.sun_path)) {
    return Bad(text, "unix socket path is " + std::to_string(name.size()) +
                         " bytes, longer than the " + std::to_string(sizeof(sun.sun_path) - 1) +
                         " that fit in sun_path");
  }
  socklen_t length;
  if (abstract) {
    sun.sun_path[0] = '\0';
    std::memcpy(sun.sun_path + 1, name.data(), name.size());
    length = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + 1 + name.size());
  } else {
    std::memcpy(sun.sun_path, name.data(), name.size());
    length = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + name.size() + 1);
  }
  return Address(reinterpret_cast<const struct sockaddr*>(&sun), length);
}

Result<Address> ParseIpv6(std::string_view text) {
  size_t close = text.find(']');
  if (close == std::string_view::npos) return Bad(text, "missing ']' after IPv6 address");
  std::string host(text.substr(1, close - 1));
  std::string_view rest = text.substr(close + 1);
  if (rest.empty() || rest[0] != ':') return Bad(text, "missing ':port' after ']'");
  Result<int> port = ParsePort(text, rest.substr(1));
  if (!port) return port.error();
  struct sockaddr_in6 sin6 {};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(static_cast<uint16_t>(*port));
  if (host.empty() || inet_pton(AF_INET6, host.c_str(), &sin6.sin6_addr) != 1) {
    return Bad(text, "'" + host + "' is not a valid IPv6 address");
  }
  return Address(reinterpret_cast<const struct sockaddr*>(&sin6), sizeof(sin6));
}

bool LooksLikeIpv4(std::string_view host) {
  return std::all_of(host.begin(), host.end(),
                     [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

Result<Address> Resolve(std::string_view text, const std::string& host, int port) {
  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* list = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (rc != 0) {
    return Bad(text, "cannot resolve host '" + host + "': " + gai_strerror(rc));
  }
  // IPv4 first when a name has both: most backends listen on IPv4, and a
  // stable choice makes "localhost" mean the same thing on every host.
  const struct addrinfo* chosen = nullptr;
  for (const struct addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) { chosen = ai; break; }
    if (ai->ai_family == AF_INET6 && chosen == nullptr) chosen = ai;
  }
  if (chosen == nullptr) {
    freeaddrinfo(list);
    return Bad(text, "host '" + host + "' has no IPv4 or IPv6 address");
  }
  struct sockaddr_storage ss {};
  std::memcpy(&ss, chosen->ai_addr, chosen->ai_addrlen);
  socklen_t len = chosen->ai_addrlen;
  freeaddrinfo(list);
  if (ss.ss_family == AF_INET) {
    reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port = htons(static_cast<uint16_t>(port));
  } else {
    reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port = htons(static_cast<uint16_t>(port));
  }
  return Address(reinterpret_cast<const struct sockaddr*>(&ss), len);
}

}  // namespace

Address::Address(const struct sockaddr* sa, socklen_t len) {
  length_ = std::min<socklen_t>(len, sizeof(storage_));
  std::memcpy(&storage_, sa, length_);
}

Result<Address> Address::Parse(std::string_view text) {
  if (text.empty()) return Bad(text, "empty address");
  // Hosts and paths go on as C strings, which a NUL would silently cut
  // short; only an abstract unix name is raw bytes.
  if (text.find('\0') != std::string_view::npos && text.substr(0, 6) != "unix:@") {
    return Bad(text, "contains a NUL byte");
  }
  if (text.substr(0, kUnixPrefix.size()) == kUnixPrefix) return ParseUnix(text);
  if (text[0] == '[') return ParseIpv6(text);

  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return Bad(text, "missing ':port'");
  std::string host(text.substr(0, colon));
  if (host.find(':') != std::string::npos) {
    return Bad(text, "an IPv6 address must be written in brackets, as in '[::1]:80'");
  }
  Result<int> port = ParsePort(text, text.substr(colon + 1));
  if (!port) return port.error();

  if (host.empty() || host == "*") {
    struct sockaddr_in sin {};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(*port));
    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    return Address(reinterpret_cast<const struct sockaddr*>(&sin), sizeof(sin));
  }
  if (LooksLikeIpv4(host)) {
    struct sockaddr_in sin {};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(*port));
    if (inet_pton(AF_INET, host.c_str(), &sin.sin_addr) != 1) {
      return Bad(text, "'" + host + "' is not a valid IPv4 address");
    }
    return Address(reinterpret_cast<const struct sockaddr*>(&sin), sizeof(sin));
  }
  return Resolve(text, host, *port);
}

int Address::port() const {
  switch (family()) {
    case AF_INET:
      return ntohs(reinterpret_cast<const struct sockaddr_in*>(&storage_)->sin_port);
    case AF_INET6:
      return ntohs(reinterpret_cast<const struct sockaddr_in6*>(&storage_)->sin6_port);
    default:
      return 0;
  }
}

std::string Address::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  switch (family()) {
    case AF_INET: {
      const auto* sin = reinterpret_cast<const struct sockaddr_in*>(&storage_);
      inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
      return std::string(buf) + ":" + std::to_string(port());
    }
    case AF_INET6: {
      const auto* sin6 = reinterpret_cast<const struct sockaddr_in6*>(&storage_);
      inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
      return "[" + std::string(buf) + "]:" + std::to_string(port());
    }
    case AF_UNIX: {
      const auto* sun = reinterpret_cast<const struct sockaddr_un*>(&storage_);
      const size_t base = offsetof(struct sockaddr_un, sun_path);
      if (length_ <= base) return "unix:";  // unnamed (e.g. a client's peer address)
      size_t n = length_ - base;
      if (sun->sun_path[0] == '\0') return "unix:@" + std::string(sun->sun_path + 1, n - 1);
      return "unix:" + std::string(sun->sun_path, strnlen(sun->sun_path, n));
    }
    default:
      return "(no address)";
  }
}

}  // namespace zrelay
