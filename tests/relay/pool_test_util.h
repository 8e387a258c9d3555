// Peers for backend-pool tests: a loopback backend that counts the
// connections it accepts and echoes each one (pattern kUpSeed in, checked,
// as many bytes of kDownSeed back), optionally holding them unanswered; and
// a client that makes one checked round trip, from a chosen source address.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/address.h"
#include "engine/socket.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay::testing {

inline constexpr uint64_t kUpSeed = 31;
inline constexpr uint64_t kDownSeed = 32;

class CountingBackend {
 public:
  // Listens on `address` (port 0: the kernel's); `hold`: answer nothing
  // until Serve().
  explicit CountingBackend(const Address& address, bool hold = false) : holding_(hold) {
    auto fd = ListenOn(address);
    if (!fd.ok()) {
      error_ = fd.error().message();
      return;
    }
    fd_ = std::move(fd).value();
    SetBlocking(fd_.get(), true);
    address_ = LocalAddress(fd_.get()).value();
    thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~CountingBackend() { Close(); }

  // Stops listening (connects are refused from now on) and ends every
  // connection still open.
  void Close() {
    if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RDWR);  // ends the blocking accept
    if (thread_.joinable()) thread_.join();
    fd_.Reset();
    std::vector<std::thread> servers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
      holding_ = false;
      cv_.notify_all();
      servers.swap(servers_);
    }
    for (std::thread& t : servers) t.join();
  }

  bool listening() const { return fd_.valid(); }
  const std::string& error() const { return error_; }
  const Address& address() const { return address_; }
  int accepted() const { return accepted_.load(); }
  int open() const { return open_.load(); }
  // False once a connection brought bytes other than the pattern.
  bool ok() const { return ok_.load(); }

  // Answers the held connections, and every later one at once.
  void Serve() {
    std::lock_guard<std::mutex> lock(mu_);
    holding_ = false;
    cv_.notify_all();
  }

 private:
  void AcceptLoop() {
    for (;;) {
      int fd = ::accept(fd_.get(), nullptr, nullptr);
      if (fd < 0) return;
      ++accepted_;
      ++open_;
      std::lock_guard<std::mutex> lock(mu_);
      open_fds_.push_back(fd);
      servers_.emplace_back([this, fd] { Echo(fd); });
    }
  }

  void Echo(int fd) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return !holding_; });
    }
    Received r = ReceivePattern(fd, kUpSeed);
    if (r.first_mismatch != -1) ok_ = false;
    if (r.error == 0) SendPattern(fd, kDownSeed, r.bytes);
    --open_;
    std::lock_guard<std::mutex> lock(mu_);  // Close() shuts down only fds still open
    std::erase(open_fds_, fd);
    ::close(fd);
  }

  UniqueFd fd_;
  Address address_;
  std::string error_;
  std::thread thread_;
  std::atomic<int> accepted_{0};
  std::atomic<int> open_{0};
  std::atomic<bool> ok_{true};
  std::mutex mu_;
  std::condition_variable cv_;
  bool holding_;                      // guarded by mu_
  std::vector<int> open_fds_;         // guarded by mu_
  std::vector<std::thread> servers_;  // guarded by mu_
};

// A blocking connection to `front`, bound first to `source` (an address
// with port 0) when given.
inline Result<UniqueFd> ConnectFrom(const Address& front,
                                    const std::optional<Address>& source = std::nullopt) {
  if (!source) return BlockingConnect(front);
  UniqueFd fd(::socket(front.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::FromErrno(errno, "socket");
  if (::bind(fd.get(), source->sockaddr(), source->length()) != 0) {
    return Error::FromErrno(errno, "bind " + source->ToString());
  }
  if (::connect(fd.get(), front.sockaddr(), front.length()) != 0) {
    return Error::FromErrno(errno, "connect to " + front.ToString());
  }
  return fd;
}

// Sends `size` bytes of kUpSeed and FIN on a connected client, reads the
// answer: true when it is exactly `size` bytes of kDownSeed.
inline bool Exchange(int fd, uint64_t size) {
  std::thread sender([fd, size] { SendPattern(fd, kUpSeed, size); });
  Received r = ReceivePattern(fd, kDownSeed);
  sender.join();
  return r.bytes == size && r.first_mismatch == -1 && r.error == 0;
}

// One client, start to end: connect (from `source`), exchange, close.
inline bool RoundTrip(const Address& front, uint64_t size = 4096,
                      const std::optional<Address>& source = std::nullopt) {
  auto fd = ConnectFrom(front, source);
  return fd.ok() && Exchange(fd->get(), size);
}

// A listener that never accepts, its queue filled: further SYNs are
// dropped, so a connect to it hangs until the connector's timeout. Linux
// queues backlog + 1 connections; the fillers keep them queued.
class StuckBackend {
 public:
  StuckBackend() {
    auto fd = ListenOn(Loopback(), {.backlog = 0, .reuse_port = false});
    if (!fd.ok()) return;
    fd_ = std::move(fd).value();
    address_ = LocalAddress(fd_.get()).value();
    for (int i = 0; i < 8; ++i) {
      auto c = StartConnect(address_);
      if (!c.ok()) return;
      struct pollfd p = {c->get(), POLLOUT, 0};
      const bool connected = ::poll(&p, 1, 200) == 1 && SocketError(c->get()) == 0;
      fillers_.push_back(std::move(c).value());
      if (!connected) {  // this one hangs in SYN_SENT: the queue is full
        full_ = true;
        return;
      }
    }
  }
  bool full() const { return full_; }
  const Address& address() const { return address_; }

 private:
  UniqueFd fd_;
  Address address_;
  std::vector<UniqueFd> fillers_;
  bool full_ = false;
};

// An address where nothing listens: a port bound and closed again.
inline Address DeadAddress(int family = AF_INET) {
  auto fd = ListenOn(Loopback(family));
  return LocalAddress(fd->get()).value();
}

}  // namespace zrelay::testing
