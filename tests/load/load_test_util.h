// Helpers for zrelay-load's end-to-end tests: a backend and clients run in
// the test process, and a deliberately corrupting proxy to put between them.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/address.h"
#include "engine/result.h"
#include "engine/unique_fd.h"
#include "engine/worker_pool.h"
#include "tools/load/backend.h"
#include "tools/load/config.h"
#include "tools/load/report.h"

namespace zrelay::load::testing {

// Parses a zrelay-load command line ("zrelay-load" is prepended).
Result<Config> ParseConfig(const std::vector<std::string>& args);

// A backend on its own worker pool, serving in this process.
class TestBackend {
 public:
  // `args` as after "zrelay-load backend", e.g. {"--mode", "verify"};
  // --listen defaults to the loopback of `family` with port 0.
  static Result<std::unique_ptr<TestBackend>> Start(const std::vector<std::string>& args,
                                                    int family = AF_INET);
  ~TestBackend();

  const Address& address() const { return backend_->local_address(); }
  BackendTotals Totals() const { return backend_->Totals(); }
  // Closes every connection (with RST) and stops listening. Idempotent.
  void Stop();

 private:
  TestBackend() = default;
  Config config_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<Backend> backend_;
};

// Runs a client mode to its end: `args` as after "zrelay-load", with
// "--target ADDR" added.
Result<Report> RunClientAt(const Address& target, std::vector<std::string> args);

// A TCP proxy for one connection at a time, with blocking sockets and
// poll() on a thread of its own, that flips one bit of one byte: the byte at
// stream offset `flip_up` of client -> upstream, and/or `flip_down` of
// upstream -> client (kNever: none). Half-closes are passed on, so a verify
// backend's report still comes back.
class CorruptingProxy {
 public:
  static constexpr uint64_t kNever = UINT64_MAX;
  static Result<std::unique_ptr<CorruptingProxy>> Start(const Address& upstream, uint64_t flip_up,
                                                        uint64_t flip_down);
  ~CorruptingProxy();

  const Address& address() const { return address_; }
  uint64_t flipped() const { return flipped_.load(); }

 private:
  CorruptingProxy() = default;
  void Serve();
  void Relay(UniqueFd client);

  Address upstream_;
  Address address_;
  UniqueFd listener_;
  uint64_t flip_up_ = kNever;
  uint64_t flip_down_ = kNever;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> flipped_{0};
  std::thread thread_;
};

// A listening socket that never accepts: connects succeed (the kernel's
// backlog takes them) and then nothing ever answers.
Result<UniqueFd> SilentListener(int family, Address* bound);

// A loopback port with nothing listening on it (bound, then closed).
Address ClosedPort(int family);

}  // namespace zrelay::load::testing
