// A blocking loopback backend that keeps what it receives: for each
// connection, in turn, it reads to EOF, records the bytes, answers with its
// `reply` and closes. A test checks the exact bytes a backend got (a
// routed ClientHello, a PROXY header) and how many connections reached it.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/socket.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay::testing {

// Reads a blocking fd until EOF, an error, or 10 s without a byte.
inline std::string ReadUntilEof(int fd) {
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string out;
  char buf[64 << 10];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

class RecordingBackend {
 public:
  explicit RecordingBackend(std::string reply, int family = AF_INET) : reply_(std::move(reply)) {
    auto fd = ListenOn(Loopback(family));
    if (!fd.ok()) return;
    fd_ = std::move(fd).value();
    SetBlocking(fd_.get(), true);
    address_ = LocalAddress(fd_.get()).value();
    thread_ = std::thread([this] { Serve(); });
  }
  ~RecordingBackend() {
    ::shutdown(fd_.get(), SHUT_RDWR);  // ends the blocking accept
    if (thread_.joinable()) thread_.join();
  }

  const Address& address() const { return address_; }
  int accepted() const { return accepted_.load(); }
  // What each connection brought, in the order they were served.
  std::vector<std::string> received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

 private:
  void Serve() {
    for (;;) {
      const int c = ::accept(fd_.get(), nullptr, nullptr);
      if (c < 0) return;
      accepted_.fetch_add(1);
      std::string bytes = ReadUntilEof(c);
      {
        std::lock_guard<std::mutex> lock(mu_);
        received_.push_back(std::move(bytes));
      }
      WriteAll(c, reply_);
      ::close(c);
    }
  }

  const std::string reply_;
  UniqueFd fd_;
  Address address_;
  std::thread thread_;
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::vector<std::string> received_;
};

// Connects to `address`, sends `data` in the given pieces (pausing `pause`
// between them), half-closes, and returns everything read back until EOF.
// `local`: set to the client socket's own address.
inline std::string Exchange(const Address& address, const std::vector<std::string>& pieces,
                            Duration pause = milliseconds(0), Address* local = nullptr) {
  auto fd = BlockingConnect(address);
  if (!fd.ok()) return "connect failed: " + fd.error().message();
  SetBlocking(fd->get(), true);
  if (local != nullptr) *local = LocalAddress(fd->get()).value();
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (i > 0 && pause > Duration::zero()) std::this_thread::sleep_for(pause);
    if (!WriteAll(fd->get(), pieces[i])) return "write failed";
  }
  ::shutdown(fd->get(), SHUT_WR);
  return ReadUntilEof(fd->get());
}

}  // namespace zrelay::testing
