// UdpFlowKey: what names a UDP flow on a worker: the client's address and
// port, and the listening socket it sent to (a client that talks to two of
// a listener's addresses has two flows, each answered from its own).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace zrelay {

struct UdpFlowKey {
  uint32_t socket = 0;  // the lane's listening socket index
  uint16_t family = 0;
  uint16_t port = 0;   // network order, as the kernel gave it
  uint32_t scope = 0;  // IPv6 scope id (link-local clients)
  uint8_t address[16] = {};

  // From a datagram's source address (IPv4 or IPv6).
  static UdpFlowKey Of(uint32_t socket, const struct sockaddr* peer) {
    UdpFlowKey k;
    k.socket = socket;
    k.family = peer->sa_family;
    if (peer->sa_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(peer);
      k.port = in->sin_port;
      std::memcpy(k.address, &in->sin_addr, sizeof(in->sin_addr));
    } else if (peer->sa_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(peer);
      k.port = in6->sin6_port;
      k.scope = in6->sin6_scope_id;
      std::memcpy(k.address, &in6->sin6_addr, sizeof(in6->sin6_addr));
    }
    return k;
  }

  bool operator==(const UdpFlowKey& o) const {
    return socket == o.socket && family == o.family && port == o.port && scope == o.scope &&
           std::memcmp(address, o.address, sizeof(address)) == 0;
  }
};

// FNV-1a over the fields, from a seed each table draws at random: clients
// choose (or spoof) their source addresses and ports, and must not be able
// to aim them all at one bucket.
struct UdpFlowKeyHash {
  uint64_t seed = 0;

  size_t operator()(const UdpFlowKey& k) const {
    uint64_t h = 1469598103934665603ull ^ seed;
    auto mix = [&h](const void* p, size_t n) {
      const auto* b = static_cast<const uint8_t*>(p);
      for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
    };
    mix(&k.socket, sizeof(k.socket));
    mix(&k.family, sizeof(k.family));
    mix(&k.port, sizeof(k.port));
    mix(&k.scope, sizeof(k.scope));
    mix(k.address, sizeof(k.address));
    return static_cast<size_t>(h);
  }
};

}  // namespace zrelay
