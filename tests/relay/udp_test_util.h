// UDP peers for the UDP listener tests: an echo backend on its own thread
// that answers every datagram with a tag and the datagram itself (so a test
// sees which backend answered), and a blocking client socket.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>

#include "engine/address.h"
#include "engine/unique_fd.h"

namespace zrelay::testing {

class UdpEchoBackend {
 public:
  // Binds `family`'s loopback on a kernel port; `tag` prefixes each reply.
  UdpEchoBackend(int family, std::string tag);
  ~UdpEchoBackend();  // stops the thread
  UdpEchoBackend(const UdpEchoBackend&) = delete;
  UdpEchoBackend& operator=(const UdpEchoBackend&) = delete;

  const Address& address() const { return address_; }
  uint64_t datagrams() const { return datagrams_.load(); }

 private:
  UniqueFd fd_;
  Address address_;
  std::string tag_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> datagrams_{0};
  std::thread thread_;
};

// A loopback address of `family` whose port nobody listens on (bound, then
// closed): datagrams sent there get ICMP port unreachable.
Address DeadUdpPort(int family);

// A UDP socket, blocking, connected to `to` (from `from` when given).
UniqueFd UdpClient(const Address& to, const std::optional<Address>& from = std::nullopt);

// The next datagram on `fd` within `timeout`; nullopt when none came.
std::optional<std::string> ReceiveDatagram(int fd, int timeout_ms = 3000);

// `size` bytes of a pattern that differs by `seed`.
std::string Pattern(size_t size, uint32_t seed);

}  // namespace zrelay::testing
