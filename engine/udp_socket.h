// UDP sockets for a datagram relay: listening sockets that tell, with each
// datagram, which local address it was sent to and how many datagrams the
// kernel dropped on the socket, and sockets connected to one peer.
//
// All are non-blocking and close-on-exec; errors name the address and the
// step that failed.
#pragma once

#include <cstdint>

#include "engine/address.h"
#include "engine/result.h"
#include "engine/unique_fd.h"

namespace zrelay {

struct UdpSocketOptions {
  // SO_RCVBUF / SO_SNDBUF in bytes; 0 keeps the kernel's default. The kernel
  // caps them at net.core.rmem_max / wmem_max.
  int receive_buffer = 0;
  int send_buffer = 0;
};

// socket + SO_REUSEADDR + SO_REUSEPORT + bind, then PrepareUdpListening.
// Each worker binds its own socket to the same address: the kernel spreads
// clients across them by a hash of their address, so a client's datagrams
// always reach the same worker.
Result<UniqueFd> BindUdp(const Address& address, const UdpSocketOptions& options);

// Options every listening UDP socket needs, bound here or adopted from
// another process: non-blocking; IP_PKTINFO (IPV6_RECVPKTINFO) so a reply
// can leave from the address its request came to, even on a socket bound
// to a wildcard address; SO_RXQ_OVFL so each datagram carries the socket's
// drop count; UDP_GRO where the kernel has it; the buffer sizes.
Status PrepareUdpListening(int fd, int family, const UdpSocketOptions& options);

// A UDP socket connected to `peer`, with UDP_GRO where the kernel has it:
// it receives only `peer`'s datagrams, and an ICMP error from `peer`
// (port unreachable) shows as EPOLLERR with the errno in SO_ERROR.
Result<UniqueFd> ConnectUdp(const Address& peer, const UdpSocketOptions& options);

// How many datagrams the kernel has dropped on `fd` so far (SO_MEMINFO's
// SK_MEMINFO_DROPS), the base SO_RXQ_OVFL counts up from; 0 when unknown.
uint32_t UdpDropCount(int fd);

// True when `address` is 0.0.0.0 or [::] (replies then name their source).
bool IsWildcard(const Address& address);

}  // namespace zrelay
