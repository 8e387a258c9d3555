// ClientSession: one worker's share of a client run.
//
// Connection i of the run lives on worker i % workers for its whole life, so
// a session is single-threaded: only its loop thread touches it. The few
// numbers the main thread shows in progress lines are relaxed atomics written
// by that one thread; everything else (the latency histogram, the first error)
// is read by the main thread only after the session is done, through
// WorkerPool::RunOnEach, which orders the accesses.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "engine/event_loop.h"
#include "engine/timer_wheel.h"
#include "tools/load/config.h"
#include "tools/load/histogram.h"
#include "tools/load/transport.h"

namespace zrelay::load {

enum class ErrorKind { kRefused, kReset, kTimeout, kOther };
const char* ErrorKindName(ErrorKind kind);
// ECONNREFUSED: refused; ECONNRESET, EPIPE: reset; ETIMEDOUT: timeout.
ErrorKind ClassifyErrno(int err);

// A counter written by one thread and read by others.
class Counter {
 public:
  void Add(uint64_t n) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t Get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

struct Counters {
  Counter bytes_up;    // client -> server, as written to the socket
  Counter bytes_down;  // server -> client, as read
  Counter requests;    // rr: responses complete; connect: exchanges complete
  Counter opened;      // TCP connections established
  Counter ready;       // idle: pairs open and past their first exchange
  Counter dropped;     // idle: held connections the peer closed
  Counter mismatches;  // bulk --verify: bytes that differed
  Counter errors[4];   // by ErrorKind
  uint64_t total_errors() const {
    return errors[0].Get() + errors[1].Get() + errors[2].Get() + errors[3].Get();
  }
};

// Read-only after the run starts; shared by every worker.
struct RunShared {
  const Config* config = nullptr;
  uint64_t key_seed = 0;  // bulk: stream keys are Mix64(key_seed + stream id)
  // Wraps a connected socket for the connection's traffic: plain, or a TLS
  // client (set up by the runner when --tls).
  std::function<std::unique_ptr<Transport>(EventLoop&, FdWatch&, int fd)> make_transport;
};

class ClientConn;

class ClientSession : private TimerHandler {
 public:
  ClientSession(EventLoop& loop, const RunShared& shared, size_t worker, size_t workers);
  ~ClientSession() override;
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // Loop thread. Creates this worker's connections and starts them; a timed
  // run (not counted, not idle) also arms the end-of-run timer.
  void Start();
  // Loop thread: the run's time is up; connections finish what they must
  // (bulk drains and collects verify reports) and close.
  void Stop();
  // Loop thread: close everything now (hard cap, idle's end).
  void Abort();

  // Any thread: every connection of this session has finished.
  bool done() const { return done_.load(std::memory_order_acquire); }
  Counters& counters() { return counters_; }
  const Counters& counters() const { return counters_; }

  // ---- for connections (loop thread) ----
  EventLoop& loop() { return loop_; }
  const Config& config() const { return *shared_.config; }
  const RunShared& shared() const { return shared_; }
  Histogram& histogram() { return histogram_; }
  // A reusable buffer for bytes that are read and then dropped or checked.
  uint8_t* scratch() { return scratch_.data(); }
  size_t scratch_size() const { return scratch_.size(); }
  // Counted runs: takes one unit (a request, an attempt) from this worker's
  // share; false when the share is used up. Timed runs: true until Stop().
  bool TakeBudget();
  bool stopping() const { return stopping_; }
  // A connection's first connect has finished (either way) or it ended
  // without one: the next waiting connection may start. At most
  // kOpenWindow connects per worker are in flight at once, so thousands of
  // connections do not overflow the listener's SYN backlog in one burst.
  void ReleaseOpenSlot();
  static constexpr size_t kOpenWindow = 256;
  void RecordError(ErrorKind kind, const std::string& detail);
  // A connection is finished for good (called once per connection).
  void ConnFinished();

  // ---- results, read after done() ----
  TimePoint start_time() const { return start_; }
  TimePoint end_time() const { return end_; }
  const std::string& first_error() const { return first_error_; }
  size_t conn_count() const { return conns_.size(); }

 private:
  void OnTimer(Timer& timer) override;
  std::unique_ptr<ClientConn> MakeConn(uint64_t id);
  // This worker's share of `total` units spread over connections.
  uint64_t ShareOf(uint64_t total) const;

  EventLoop& loop_;
  const RunShared& shared_;
  size_t worker_;
  size_t workers_;
  Timer run_timer_;
  std::vector<std::unique_ptr<ClientConn>> conns_;
  std::vector<uint8_t> scratch_;
  Counters counters_;
  Histogram histogram_;
  std::string first_error_;
  uint64_t budget_ = 0;
  bool counted_budget_ = false;
  bool stopping_ = false;
  size_t active_ = 0;      // connections not finished
  size_t next_start_ = 0;  // conns_[next_start_..] have not started
  size_t free_slots_ = 0;  // connects that may start now
  bool starting_ = false;  // ReleaseOpenSlot is starting connections
  TimePoint start_{};
  TimePoint end_{};
  std::atomic<bool> done_{false};
};

// The number of connections (streams, conns or pairs) a run opens.
uint64_t ConnCountOf(const Config& config);

}  // namespace zrelay::load
