// Collects PairStats from on_close callbacks (worker threads) for a test
// thread to wait on.
#pragma once

#include <condition_variable>
#include <mutex>
#include <vector>

#include "engine/clock.h"
#include "relay/relay.h"

namespace zrelay::testing {

class CloseRecorder {
 public:
  OnClose Callback() {
    return [this](const PairStats& s) {
      std::lock_guard<std::mutex> lock(mu_);
      closed_.push_back(s);
      cv_.notify_all();
    };
  }
  // Waits until `n` pairs closed or `deadline` passed; returns what closed.
  std::vector<PairStats> WaitFor(size_t n, Duration deadline = seconds(20)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, deadline, [&] { return closed_.size() >= n; });
    return closed_;
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return closed_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<PairStats> closed_;
};

}  // namespace zrelay::testing
