#include "tools/load/bulk_conn.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace zrelay::load {
namespace {

// Bytes one Pump() moves per direction before yielding to other streams.
constexpr size_t kBudget = 1 << 20;
// How long a stream waits for the backend's EOF after its own half-close.
Duration DrainGrace(const Config& c) { return std::min<Duration>(c.io_timeout, seconds(5)); }

}  // namespace

BulkConn::BulkConn(ClientSession& session, uint64_t id, uint64_t share)
    : ClientConn(session, id),
      direction_(session.config().direction),
      verify_(session.config().verify),
      writer_(Mix64(session.shared().key_seed + id)) {
  const bool counted = session.config().bytes.has_value();
  send_limit_ = direction_ == Direction::kDown ? 0 : counted ? share : UINT64_MAX;
  recv_limit_ = direction_ == Direction::kDown && counted ? share : UINT64_MAX;
  if (verify_ && direction_ == Direction::kDown) checker_.emplace();
  if (verify_ && direction_ == Direction::kBoth) checker_.emplace(writer_.key());
}

void BulkConn::OnConnected() {
  if (send_limit_ == 0) writing_done_ = true;  // down: the client only reads
  ArmTimer(config().io_timeout);
  Pump();
}

void BulkConn::Stop() {
  if (phase() != Phase::kOpen) {
    ClientConn::Stop();  // never got connected: nothing to measure
    return;
  }
  if (direction_ == Direction::kDown) {
    Complete();
    return;
  }
  if (!writing_done_) EndWriting();
  if (phase() != Phase::kOpen) return;
  if (!draining_) {
    draining_ = true;
    ArmTimer(DrainGrace(config()));
  }
  Pump();
}

void BulkConn::OnTimerFired() {
  if (draining_) {
    Fail(
        ErrorKind::kTimeout,
        "the backend did not close within " +
            std::to_string(std::chrono::duration_cast<milliseconds>(DrainGrace(config())).count()) +
            " ms of our half-close");
  } else {
    Fail(ErrorKind::kTimeout, "stream made no progress for --io-timeout");
  }
}

void BulkConn::Pump() {
  size_t write_budget = kBudget;
  size_t read_budget = kBudget;
  bool progress = true;
  while (progress && phase() == Phase::kOpen) {
    progress = false;
    if (!writing_done_ && write_budget > 0 && io().CanWrite()) progress |= WriteSome(&write_budget);
    if (writing_done_ && !shut_done_ && send_limit_ > 0 && phase() == Phase::kOpen &&
        io().CanWrite()) {
      EndWriting();
    }
    if (phase() != Phase::kOpen) return;
    if (read_budget > 0 && io().CanRead()) progress |= ReadSome(&read_budget);
  }
  if (phase() != Phase::kOpen) return;
  const bool more_write = !writing_done_ && io().CanWrite();
  if ((write_budget == 0 && more_write) || (read_budget == 0 && io().CanRead())) Yield();
}

bool BulkConn::WriteSome(size_t* budget) {
  uint64_t left = send_limit_ - writer_.offset();
  size_t want = static_cast<size_t>(std::min<uint64_t>({left, config().chunk, *budget}));
  size_t len = 0;
  const uint8_t* data = writer_.Next(want, &len);
  IoResult r = io().Write(data, len);
  if (r.status == IoStatus::kBlocked) return false;
  if (r.status != IoStatus::kOk) {
    FailIo(r, "send");
    return false;
  }
  writer_.Advance(r.bytes);
  counters().bytes_up.Add(r.bytes);
  *budget -= std::min(*budget, r.bytes);
  if (!draining_) ArmTimer(config().io_timeout);
  if (writer_.offset() >= send_limit_) EndWriting();
  return true;
}

bool BulkConn::ReadSome(size_t* budget) {
  size_t want = std::min({session().scratch_size(), static_cast<size_t>(config().chunk), *budget});
  if (direction_ == Direction::kDown) {
    want = static_cast<size_t>(std::min<uint64_t>(want, recv_limit_ - received_));
  }
  IoResult r = io().Read(session().scratch(), std::max<size_t>(want, 1));
  if (r.status == IoStatus::kBlocked) return false;
  if (r.status == IoStatus::kEof) {
    OnEof();
    return false;
  }
  if (r.status != IoStatus::kOk) {
    FailIo(r, "receive");
    return false;
  }
  Consume(session().scratch(), r.bytes);
  *budget -= std::min(*budget, r.bytes);
  if (!draining_) ArmTimer(config().io_timeout);
  if (direction_ == Direction::kDown && received_ >= recv_limit_) Complete();
  return true;
}

void BulkConn::Consume(const uint8_t* data, size_t len) {
  if (direction_ == Direction::kUp) {
    // What a verify backend says after our half-close; anything else a sink
    // or echo sends back is not ours to count.
    if (verify_) {
      size_t n = std::min(len, kVerifyReportSize - report_len_);
      std::memcpy(report_ + report_len_, data, n);
      report_len_ += n;
    }
    return;
  }
  received_ += len;
  counters().bytes_down.Add(len);
  if (checker_) {
    uint64_t before = checker_->mismatches();
    checker_->Feed(data, len);
    counters().mismatches.Add(checker_->mismatches() - before);
  }
}

void BulkConn::EndWriting() {
  writing_done_ = true;
  if (shut_done_) return;
  IoResult r = io().ShutdownWrite();
  if (r.status == IoStatus::kError) {
    FailIo(r, "half-close");
    return;
  }
  // A TLS close_notify can block: Pump() tries again when writable.
  shut_done_ = r.status == IoStatus::kOk;
  if (!draining_) {
    draining_ = true;
    ArmTimer(DrainGrace(config()));
  }
}

void BulkConn::OnEof() {
  if (direction_ == Direction::kDown || !writing_done_) {
    Fail(ErrorKind::kReset, "the backend closed the stream early, after " +
                                std::to_string(writer_.offset()) + " bytes sent and " +
                                std::to_string(received_) + " received");
    return;
  }
  Complete();
}

void BulkConn::Complete() {
  if (direction_ == Direction::kUp && verify_) {
    std::optional<VerifyReport> report;
    if (report_len_ == kVerifyReportSize) report = DecodeVerifyReport(report_);
    if (!report) {
      Fail(ErrorKind::kOther, "no verify report from the backend (is it --mode verify?)");
      return;
    }
    counters().mismatches.Add(report->mismatches);
    if (report->bytes != writer_.offset()) {
      Fail(ErrorKind::kOther, "verify: the backend checked " + std::to_string(report->bytes) +
                                  " bytes, the stream sent " + std::to_string(writer_.offset()));
      return;
    }
  }
  if (direction_ == Direction::kBoth && received_ != writer_.offset()) {
    Fail(ErrorKind::kOther, "echo returned " + std::to_string(received_) + " of " +
                                std::to_string(writer_.offset()) + " bytes sent");
    return;
  }
  if (checker_ && checker_->bytes() > 0 && checker_->bytes() < kStreamHeaderSize) {
    counters().mismatches.Add(kStreamHeaderSize - checker_->bytes());  // a cut-off header
  }
  // down: unread bytes make the close a reset, which the source expects.
  CloseSocket();
  Finish();
}

}  // namespace zrelay::load
