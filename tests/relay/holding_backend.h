// A blocking loopback backend for limit tests: it accepts every connection,
// and holds each one unanswered until Serve() (so a test can count how many
// backend connections a listener opens at once), then echoes: reads the
// client's pattern (seed kUpSeed) to EOF, checks it, answers with as many
// bytes of pattern kDownSeed and closes.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay::testing {

class HoldingBackend {
 public:
  static constexpr uint64_t kUpSeed = 21;
  static constexpr uint64_t kDownSeed = 22;

  explicit HoldingBackend(int family = AF_INET) {
    auto fd = ListenOn(Loopback(family));
    if (!fd.ok()) return;
    fd_ = std::move(fd).value();
    SetBlocking(fd_.get(), true);
    address_ = LocalAddress(fd_.get()).value();
    thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~HoldingBackend() {
    ::shutdown(fd_.get(), SHUT_RDWR);  // ends the blocking accept
    if (thread_.joinable()) thread_.join();
    for (int fd : held_) ::close(fd);  // never served
  }

  const Address& address() const { return address_; }
  // Connections accepted so far, and the most open at once.
  int accepted() const { return accepted_.load(); }
  int max_open() const { return max_open_.load(); }
  // False once any connection brought bytes other than the pattern.
  bool ok() const { return ok_.load(); }

  // Answers every held connection, and from now on each new one at once.
  void Serve() {
    std::vector<int> held;
    {
      std::lock_guard<std::mutex> lock(mu_);
      serving_ = true;
      held.swap(held_);
    }
    for (int fd : held) Echo(fd);
  }

 private:
  void AcceptLoop() {
    for (;;) {
      int fd = ::accept(fd_.get(), nullptr, nullptr);
      if (fd < 0) return;
      ++accepted_;
      const int open = ++open_;
      int seen = max_open_.load();
      while (open > seen && !max_open_.compare_exchange_weak(seen, open)) {
      }
      std::unique_lock<std::mutex> lock(mu_);
      if (!serving_) {
        held_.push_back(fd);
        continue;
      }
      lock.unlock();
      Echo(fd);
    }
  }

  void Echo(int fd) {
    Received r = ReceivePattern(fd, kUpSeed);
    if (r.first_mismatch != -1 || r.error != 0) ok_ = false;
    SendPattern(fd, kDownSeed, r.bytes, 64 << 10, /*shut_write=*/false);
    // Counted closed before the FIN: the relay's pair (and its slot) can end
    // only once this FIN has arrived.
    --open_;
    ::close(fd);
  }

  UniqueFd fd_;
  Address address_;
  std::thread thread_;
  std::mutex mu_;
  bool serving_ = false;   // guarded by mu_
  std::vector<int> held_;  // guarded by mu_
  std::atomic<int> accepted_{0};
  std::atomic<int> open_{0};
  std::atomic<int> max_open_{0};
  std::atomic<bool> ok_{true};
};

}  // namespace zrelay::testing
