// What the Engine::Metrics() tests share: an engine of two workers with a
// recorder of closes, listeners by name and waits on their metrics, a
// loopback backend that runs a script per connection, and an address
// nothing listens on.
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/socket.h"
#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/listen_or_fail.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/certs_fixture.h"
#include "tests/support/loop_test_util.h"

namespace zrelay::testing {

// A loopback backend that hands each connection it accepts to `serve`, one
// at a time, on its own thread, and closes it afterwards.
class ScriptedBackend {
 public:
  explicit ScriptedBackend(std::function<void(int fd)> serve) : serve_(std::move(serve)) {
    auto fd = ListenOn(testing::Loopback(AF_INET));
    EXPECT_TRUE(fd.ok()) << fd.error().message();
    fd_ = std::move(fd.value());
    testing::SetBlocking(fd_.get(), true);
    address_ = LocalAddress(fd_.get()).value();
    thread_ = std::thread([this] {
      for (;;) {
        const int c = ::accept(fd_.get(), nullptr, nullptr);
        if (c < 0) return;
        serve_(c);
        ::close(c);
      }
    });
  }
  ~ScriptedBackend() {
    ::shutdown(fd_.get(), SHUT_RDWR);  // ends the blocking accept
    thread_.join();
  }
  const Address& address() const { return address_; }

 private:
  std::function<void(int)> serve_;
  UniqueFd fd_;
  Address address_;
  std::thread thread_;
};

// A loopback address nothing listens on: bound, then closed again.
inline Address DeadAddress() {
  auto fd = ListenOn(testing::Loopback(AF_INET));
  EXPECT_TRUE(fd.ok());
  return LocalAddress(fd->get()).value();
}

class MetricsTest : public CertsTest {
 protected:
  // Indexes into ListenerMetrics::closed_total.
  static constexpr size_t kDone = static_cast<size_t>(CloseCause::kDone);
  static constexpr size_t kReset = static_cast<size_t>(CloseCause::kReset);
  static constexpr size_t kError = static_cast<size_t>(CloseCause::kError);
  static constexpr size_t kTimeout = static_cast<size_t>(CloseCause::kTimeout);
  static constexpr size_t kConnectFailed = static_cast<size_t>(CloseCause::kConnectFailed);

  void StartEngine(RelayMode mode, Duration handshake_timeout = seconds(10)) {
    EngineOptions options;
    options.workers = 2;
    options.mode = mode;
    options.handshake_timeout = handshake_timeout;
    auto engine = testing::StartEngine(options);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine.value());
  }

  ListenOptions Options(const std::string& name, std::vector<Address> backends) {
    ListenOptions options;
    options.name = name;
    options.address = testing::Loopback(AF_INET);
    for (const Address& b : backends) options.backends.push_back(BackendOptions{b, nullptr, {}});
    options.on_close = closes_.Callback();
    return options;
  }

  Address Listen(const ListenOptions& options) { return testing::ListenOrFail(*engine_, options); }

  // The listener named `name` in a fresh snapshot (a default one, which
  // fails the test, when there is none).
  ListenerMetrics Listener(const std::string& name) const {
    MetricsSnapshot m = engine_->Metrics();
    for (ListenerMetrics& l : m.listeners) {
      if (l.name == name) return l;
    }
    ADD_FAILURE() << "no listener named " << name;
    return {};
  }

  // Waits until the listener's metrics satisfy `done`; returns the last.
  ListenerMetrics WaitForListener(const std::string& name,
                                  const std::function<bool(const ListenerMetrics&)>& done) {
    ListenerMetrics last;
    testing::WaitFor(
        [&] {
          last = Listener(name);
          return done(last);
        },
        seconds(10));
    return last;
  }

  static uint64_t PairsOpen(const MetricsSnapshot& m) {
    uint64_t n = 0;
    for (const WorkerMetrics& w : m.workers) n += w.pairs_open;
    return n;
  }

  CloseRecorder closes_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace zrelay::testing
