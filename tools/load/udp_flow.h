// The client side of zrelay-load udp: flows and the per-worker session that
// owns them.
//
// A flow is one UDP socket connected to the target. It sends request 1,
// waits for its echo, sends request 2, and so on: one request in flight per
// flow, like an rr connection. A request ends one of two ways:
//   reply     a datagram byte-identical to the request (udp_payload.h):
//             counted with its latency
//   lost      no such datagram within --reply-timeout
// and the flow goes on with the next. Any other datagram ends nothing and
// is counted: as late when it is, byte for byte, an earlier request of the
// flow (answered after its timeout, or twice); else as a mismatch (another
// flow's datagram, or ours corrupt, truncated or resized; a corrupted reply
// thus costs a mismatch and, at its timeout, a loss). An ICMP error on the
// socket (ECONNREFUSED: nothing listens at the target, or a relay's port
// was closed for a moment) is counted as unreachable; the request it
// belongs to then times out like any loss, so a dead target costs each flow
// one --reply-timeout per request and never spins. When the run's time is
// up, a request still in flight is dropped from every count but `sent`.
//
// Flow i lives on worker i % workers (as rr connections do), so a session is
// single-threaded; the counters the main thread reads while the run goes on
// are relaxed atomics with one writer, everything else is read after done(),
// ordered by WorkerPool::RunOnEach.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "engine/event_loop.h"
#include "engine/timer_wheel.h"
#include "engine/unique_fd.h"
#include "tools/load/config.h"
#include "tools/load/histogram.h"
#include "tools/load/session.h"

namespace zrelay::load {

struct UdpCounters {
  Counter sent;         // requests sent (one datagram each)
  Counter received;     // datagrams received, whatever they held
  Counter replies;      // requests answered byte-exact
  Counter lost;         // requests with no reply within --reply-timeout
  Counter late;         // byte-exact replies to an earlier request of the flow
  Counter mismatches;   // datagrams that are no request of the flow
  Counter unreachable;  // ICMP errors reported on a flow's socket
  Counter bytes_up;     // payload bytes sent
  Counter bytes_down;   // payload bytes received
  Counter errors[4];    // socket setup and unexpected send/recv failures, by ErrorKind
  uint64_t total_errors() const {
    return errors[0].Get() + errors[1].Get() + errors[2].Get() + errors[3].Get();
  }
};

class UdpFlow;

class UdpSession : private TimerHandler {
 public:
  // `key_seed`: flow i's key is Mix64(key_seed + i).
  UdpSession(EventLoop& loop, const Config& config, uint64_t key_seed, size_t worker,
             size_t workers);
  ~UdpSession() override;  // loop thread (or after the loop stopped)
  UdpSession(const UdpSession&) = delete;
  UdpSession& operator=(const UdpSession&) = delete;

  // Loop thread: opens this worker's flows and sends their first requests; a
  // timed run also arms the end-of-run timer.
  void Start();
  // Loop thread: the time is up (or the run is cut short): every flow closes
  // now, dropping a request in flight.
  void Stop();

  // Any thread.
  bool done() const { return done_.load(std::memory_order_acquire); }
  const UdpCounters& counters() const { return counters_; }

  // ---- for flows (loop thread) ----
  EventLoop& loop() { return loop_; }
  const Config& config() const { return config_; }
  UdpCounters& counters() { return counters_; }
  Histogram& histogram() { return histogram_; }
  // Where datagrams are received (larger than any UDP payload).
  uint8_t* receive_buffer() { return receive_.data(); }
  size_t receive_size() const { return receive_.size(); }
  // Room for one --size datagram: where a request is built, to be sent or
  // compared with a reply (flows keep none of their own, so 19,000 flows
  // of 64 KB cost no memory).
  uint8_t* datagram_buffer() { return datagram_.data(); }
  // Counted runs: takes one request from this worker's share; false when
  // it is used up. Timed runs: true until Stop().
  bool TakeBudget();
  void RecordError(ErrorKind kind, const std::string& detail);
  void FlowFinished();

  // ---- results, read after done() ----
  TimePoint start_time() const { return start_; }
  TimePoint end_time() const { return end_; }
  const std::string& first_error() const { return first_error_; }

 private:
  void OnTimer(Timer&) override { Stop(); }
  uint64_t ShareOf(uint64_t total) const;

  EventLoop& loop_;
  const Config& config_;
  uint64_t key_seed_;
  size_t worker_;
  size_t workers_;
  Timer run_timer_;
  std::vector<std::unique_ptr<UdpFlow>> flows_;
  std::vector<uint8_t> receive_;
  std::vector<uint8_t> datagram_;
  UdpCounters counters_;
  Histogram histogram_;
  std::string first_error_;
  uint64_t budget_ = 0;
  bool counted_ = false;
  bool stopping_ = false;
  size_t active_ = 0;
  TimePoint start_{};
  TimePoint end_{};
  std::atomic<bool> done_{false};
};

class UdpFlow final : private FdHandler, private TimerHandler, private ReadyHandler {
 public:
  UdpFlow(UdpSession& session, uint64_t key);
  ~UdpFlow() override;
  UdpFlow(const UdpFlow&) = delete;
  UdpFlow& operator=(const UdpFlow&) = delete;

  // Opens the socket, connects it to the target and sends the first request.
  void Start();
  // Closes now; a request in flight is not counted.
  void Stop() { Finish(); }
  bool finished() const { return state_ == State::kDone; }

  // Datagrams below kUdpHeaderSize name no request: a late reply to one of
  // the kRecent requests before the current one is recognized, an older
  // one counts as a mismatch. With a header, any earlier request is.
  static constexpr uint64_t kRecent = 8;

 private:
  enum class State {
    kIdle,      // not started
    kAwaiting,  // request seq_ is out; the timer is its reply timeout
    kBlocked,   // request seq_ could not be sent yet (a full socket buffer)
    kDone,      // closed for good
  };

  void OnFdEvent(FdWatch& watch, uint32_t events) override;
  void OnTimer(Timer& timer) override;
  void OnReady() override { Receive(); }
  // Takes the next request from the budget and sends it, or finishes.
  void Next();
  // Sends request seq_ (again, after kBlocked).
  void Send();
  // Reads what is queued on the socket, a bounded number per turn.
  void Receive();
  void OnDatagram(const uint8_t* data, size_t len);
  // Whether a datagram is, byte for byte, request `seq`.
  bool IsRequest(uint64_t seq, const uint8_t* data, size_t len);
  // Whether a datagram is, byte for byte, an earlier request (see kRecent).
  bool IsEarlierRequest(const uint8_t* data, size_t len);
  // Counts the error, closes and finishes.
  void Fail(int err, const std::string& what);
  void Finish();

  UdpSession& session_;
  const uint64_t key_;
  const size_t size_;
  UniqueFd fd_;
  FdWatch watch_;  // after fd_: unregistered before the fd closes
  Timer timer_;
  State state_ = State::kIdle;
  uint64_t seq_ = 0;  // the current request; the first is 1
  TimePoint sent_at_{};
};

}  // namespace zrelay::load
