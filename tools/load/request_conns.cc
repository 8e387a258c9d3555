#include "tools/load/request_conns.h"

#include <chrono>

namespace zrelay::load {
namespace {

// Requests one Pump() completes before yielding to other connections.
constexpr int kRequestsPerPump = 64;
// The pause a connect slot takes after an error before trying again.
constexpr Duration kErrorBackoff = milliseconds(10);

uint64_t NanosSince(TimePoint start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
}

}  // namespace

// ---- rr --------------------------------------------------------------------

void RrConn::NextRequest() {
  if (!session().TakeBudget()) {
    Finish();
    return;
  }
  exchange_.Begin(config().req, config().resp);
  started_ = Clock::now();
  ArmTimer(config().io_timeout);
  Pump();
}

void RrConn::Pump() {
  for (int done = 0; phase() == Phase::kOpen;) {
    Exchange::Step step = exchange_.Run(io(), session());
    if (step == Exchange::Step::kBlocked) return;
    if (step == Exchange::Step::kFailed) {
      FailIo(exchange_.failure(), exchange_.receiving() ? "response" : "request");
      return;
    }
    session().histogram().Record(NanosSince(started_));
    counters().requests.Add(1);
    if (!session().TakeBudget()) {
      Finish();
      return;
    }
    exchange_.Begin(config().req, config().resp);
    started_ = Clock::now();
    ArmTimer(config().io_timeout);
    if (++done == kRequestsPerPump) {
      Yield();
      return;
    }
  }
}

// ---- connect ---------------------------------------------------------------

void ConnectConn::Next() {
  backoff_ = restart_ = false;
  if (!session().TakeBudget()) {
    Finish();
    return;
  }
  started_ = Clock::now();
  Connect();
}

void ConnectConn::OnConnected() {
  exchange_.Begin(config().req, config().resp);
  ArmTimer(config().io_timeout);
  Pump();
}

void ConnectConn::Pump() {
  Exchange::Step step = exchange_.Run(io(), session());
  if (step == Exchange::Step::kBlocked) return;
  if (step == Exchange::Step::kFailed) {
    FailIo(exchange_.failure(), exchange_.receiving() ? "response" : "request");
    return;
  }
  session().histogram().Record(NanosSince(started_));
  counters().requests.Add(1);
  CloseSocket();
  // The next connect starts from the ready list, outside this fd callback.
  restart_ = true;
  Yield();
}

void ConnectConn::OnReadyClosed() {
  if (restart_) Next();
}

void ConnectConn::OnFailed() {
  if (session().stopping()) {
    Finish();
    return;
  }
  backoff_ = true;
  ArmTimer(kErrorBackoff);
}

void ConnectConn::OnTimerFired() {
  if (backoff_) {
    Next();
    return;
  }
  ClientConn::OnTimerFired();
}

// ---- idle ------------------------------------------------------------------

void IdleConn::OnConnected() {
  if (config().req == 0 && config().resp == 0) {
    Hold();
    return;
  }
  exchange_.Begin(config().req, config().resp);
  ArmTimer(config().io_timeout);
  Pump();
}

void IdleConn::Hold() {
  CancelTimer();
  holding_ = true;
  counters().ready.Add(1);
  Pump();
}

void IdleConn::Pump() {
  if (!holding_) {
    Exchange::Step step = exchange_.Run(io(), session());
    if (step == Exchange::Step::kBlocked) return;
    if (step == Exchange::Step::kFailed) {
      FailIo(exchange_.failure(), exchange_.receiving() ? "response" : "request");
      return;
    }
    Hold();
    return;
  }
  // Held: nothing should arrive. An EOF or error means the relay (or the
  // backend) dropped an idle pair.
  while (phase() == Phase::kOpen && io().CanRead()) {
    IoResult r = io().Read(session().scratch(), session().scratch_size());
    if (r.status == IoStatus::kBlocked) return;
    if (r.status == IoStatus::kOk) continue;  // unexpected bytes: ignored
    FailIo(r, "idle connection");
  }
}

void IdleConn::OnFailed() {
  // Whatever ended a held pair (EOF, reset, an error event), it was dropped.
  if (holding_) counters().dropped.Add(1);
  Finish();
}

}  // namespace zrelay::load
