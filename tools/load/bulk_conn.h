// BulkConn: one bulk stream.
//
//   up    send the stream (header + keyed pattern) until the run's time or
//         volume is done, then half-close and wait for the backend's EOF, so
//         the measured time covers delivery, not just the socket buffers.
//         With --verify the backend (mode verify) answers the half-close with
//         a report of bytes checked and mismatches, which must agree.
//   down  read a backend's source stream (--verify checks it) until time or
//         volume is done, then close.
//   both  send and read the echo at once; after the half-close the echo must
//         come back complete (--verify also checks every byte).
#pragma once

#include <cstdint>
#include <optional>

#include "tools/load/client_conn.h"
#include "tools/load/pattern.h"

namespace zrelay::load {

class BulkConn final : public ClientConn {
 public:
  // `share`: stream bytes this stream moves in a counted run (--bytes);
  // ignored in timed runs.
  BulkConn(ClientSession& session, uint64_t id, uint64_t share);

  void Start() override { Connect(); }
  void Stop() override;

 private:
  void OnConnected() override;
  void Pump() override;
  void OnTimerFired() override;

  // Each moves bytes within `*budget`; returns true if it made progress.
  bool WriteSome(size_t* budget);
  bool ReadSome(size_t* budget);
  void Consume(const uint8_t* data, size_t len);
  void EndWriting();  // no more bytes to send: half-close (up, both)
  void OnEof();
  void Complete();  // the stream's work is over: check, count, close

  Direction direction_;
  bool verify_;
  StreamWriter writer_;
  std::optional<StreamChecker> checker_;
  uint64_t send_limit_;  // stream bytes to send; UINT64_MAX: until Stop()
  uint64_t recv_limit_;  // down: stream bytes to read; UINT64_MAX: until Stop()
  uint64_t received_ = 0;
  bool writing_done_ = false;  // nothing more to send
  bool shut_done_ = false;     // the half-close went out
  bool draining_ = false;      // waiting for the peer's EOF after ours
  uint8_t report_[kVerifyReportSize] = {};
  size_t report_len_ = 0;
};

}  // namespace zrelay::load
