// Address: an IPv4, IPv6 or unix stream socket address, parsed from text.
//
// Accepted forms:
//   "127.0.0.1:8080"   IPv4 literal and port
//   "[::1]:8080"       IPv6 literal in brackets and port
//   "localhost:8080"   a host name, resolved once with getaddrinfo (blocking:
//                      use it for configuration, never on the data path)
//   ":8080", "*:8080"  IPv4 any-address
//   "unix:/run/x.sock" a unix stream socket path ("unix:@name" is abstract)
// Port 0 is allowed (the kernel picks one); anything else invalid is an Error
// whose message quotes the input and says what is wrong with it.
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>

#include "engine/result.h"

namespace zrelay {

class Address {
 public:
  Address() = default;
  // Wraps a kernel socket address (from accept4 or getsockname).
  Address(const struct sockaddr* sa, socklen_t len);

  static Result<Address> Parse(std::string_view text);

  int family() const { return storage_.ss_family; }  // AF_INET, AF_INET6, AF_UNIX
  bool is_unix() const { return family() == AF_UNIX; }
  // The TCP port, or 0 for unix addresses.
  int port() const;
  const struct sockaddr* sockaddr() const {
    return reinterpret_cast<const struct sockaddr*>(&storage_);
  }
  socklen_t length() const { return length_; }

  // "127.0.0.1:80", "[::1]:80" or "unix:/path": Parse(ToString()) round-trips.
  std::string ToString() const;

 private:
  struct sockaddr_storage storage_ {};
  socklen_t length_ = 0;
};

}  // namespace zrelay
