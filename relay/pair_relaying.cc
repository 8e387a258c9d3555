// Pair, relaying: runs both directions through the pumps, counts what
// they delivered, paces rate-limited directions, and keeps a direction
// towards a truncated TLS leg reading (and discarding) to its end.
#include "relay/pair.h"

#include <algorithm>

#include "relay/worker.h"

namespace zrelay {

void Pair::Run() {
  if (state_ == State::kHandshaking && !RunHandshakes()) return;
  if (state_ != State::kRelaying) return;
  RunPumps();
  // A ring this pair gave back may be what another pair is waiting for.
  worker_.WakeBufferWaitersIfFree();
}

void Pair::RunPumps() {
  size_t budget = worker_.options().budget_per_event;
  uint64_t ab_before = a_to_b_.bytes;
  uint64_t ba_before = b_to_a_.bytes;
  // The pump counts the worker's spliced bytes as it delivers them; what
  // they grow by in this call is this pair's.
  uint64_t spliced_before = worker_.stats().bytes_spliced.Get();

  PumpResult ab = Move(a_to_b_, a_, b_, b_to_a_, budget);
  PumpResult ba{};
  if (ab.outcome != PumpOutcome::kError) ba = Move(b_to_a_, b_, a_, a_to_b_, budget);

  WorkerCounters& stats = worker_.stats();
  if (a_to_b_.bytes != ab_before || b_to_a_.bytes != ba_before) {
    const uint64_t ab_moved = a_to_b_.bytes - ab_before;
    const uint64_t ba_moved = b_to_a_.bytes - ba_before;
    if (counters_) CountBytes(ab_moved, ba_moved, spliced_before);
    stats.bytes_a_to_b.Add(ab_moved);
    stats.bytes_b_to_a.Add(ba_moved);
    last_active_ = worker_.loop().now();
  }

  if (ab.outcome == PumpOutcome::kError) {
    PairLeg& leg = ab.on_source ? a_ : b_;
    return Fail(ab.on_source ? "A" : "B", ab.on_source ? "read" : "write", ab.err,
                leg.io().error_detail());
  }
  if (ba.outcome == PumpOutcome::kError) {
    PairLeg& leg = ba.on_source ? b_ : a_;
    return Fail(ba.on_source ? "B" : "A", ba.on_source ? "read" : "write", ba.err,
                leg.io().error_detail());
  }
  if (ab.outcome == PumpOutcome::kDone && ba.outcome == PumpOutcome::kDone) {
    for (PairLeg* leg : {&a_, &b_}) {
      if (leg->tls && leg->tls->truncated()) {
        return Close(CloseCause::kTruncated, 0,
                     std::string("leg ") + (leg == &a_ ? "A" : "B") +
                         ": TLS peer closed without close_notify");
      }
    }
    return Close(CloseCause::kDone, 0, {});
  }
  if (ab.outcome == PumpOutcome::kMore || ba.outcome == PumpOutcome::kMore) {
    worker_.loop().ScheduleReady(this);
  }
  if (ab.outcome == PumpOutcome::kNoBuffer || ba.outcome == PumpOutcome::kNoBuffer) {
    worker_.WaitForBuffer(this);
  }
  ArmRateTimer();
}

void Pair::ArmRateTimer() {
  if (rate_timer_.armed()) return;
  std::optional<Duration> wait;
  const TimePoint now = Clock::now();
  for (Direction* dir : {&a_to_b_, &b_to_a_}) {
    if (!dir->rate_paused) continue;
    const Duration until = dir->rate->WaitFor(now);
    wait = wait ? std::min(*wait, until) : until;
  }
  if (wait) worker_.loop().ArmTimer(rate_timer_, *wait);
}

void Pair::OnRateTimer() {
  a_to_b_.rate_paused = b_to_a_.rate_paused = false;
  Run();
}

void Pair::CountBytes(uint64_t a_to_b, uint64_t b_to_a, uint64_t spliced_before) {
  const uint64_t spliced = worker_.stats().bytes_spliced.Get() - spliced_before;
  counters_->bytes_client_to_backend.Add(a_to_b);
  counters_->bytes_backend_to_client.Add(b_to_a);
  counters_->bytes_spliced.Add(spliced);
  counters_->bytes_copied.Add(a_to_b + b_to_a - spliced);
}

// Runs `dir` (from `src` to `dst`; `other` is the opposite direction) with
// the pump, until its destination is a TLS leg that ended without
// close_notify. OpenSSL makes such a session fatal: every later write fails
// ("connection already failed"). That ends what this direction can deliver,
// not the pair: the truncating peer's own bytes still go through, and the
// pair ends as kTruncated. From then on this direction discards.
PumpResult Pair::Move(Direction& dir, PairLeg& src, PairLeg& dst, const Direction& other,
                      size_t budget) {
  bool& discarding = &dir == &a_to_b_ ? a_to_b_discards_ : b_to_a_discards_;
  if (!discarding) {
    PumpResult r = Pump(dir, src.io(), dst.io(), worker_.env(), budget,
                        other.state == DirectionState::kDone);
    if (r.outcome != PumpOutcome::kError || r.on_source || !dst.io().truncated()) return r;
    discarding = true;
    if (dir.ring) dir.ring->Clear();  // undeliverable
    std::string().swap(dir.staged);
    dir.staged_offset = 0;
  }
  return Discard(dir, src, dst, other, budget);
}

// Reads what `src` still sends and drops it, until its EOF; then ends the
// direction as the pump does (FIN to `dst`). It keeps reading because
// closing a socket with unread input sends RST, and an RST throws away
// whatever is still queued towards that peer: the other direction's last
// bytes. Discarded bytes are not counted as delivered, nor as activity.
PumpResult Pair::Discard(Direction& dir, PairLeg& src, PairLeg& dst, const Direction& other,
                         size_t budget) {
  PumpEnv& env = worker_.env();
  size_t read_total = 0;
  while (dir.state == DirectionState::kOpen && src.io().ReadReady()) {
    if (read_total >= budget) return {PumpOutcome::kMore};
    if (!dir.ring) dir.ring = env.buffers.Take();
    if (!dir.ring) return {PumpOutcome::kNoBuffer};
    dir.ring->Clear();
    IoResult r = src.io().Read(*dir.ring, dir.ring->capacity());
    if (r.status == IoStatus::kOk) read_total += r.bytes;
    if (r.status == IoStatus::kEof) dir.state = DirectionState::kDraining;
    if (r.status == IoStatus::kError) return {PumpOutcome::kError, r.err, /*on_source=*/true};
    if (r.status == IoStatus::kWouldBlock) break;
  }
  ReleaseDirection(dir, env);  // nothing is kept, so an idle direction holds no ring
  if (dir.state == DirectionState::kOpen) return {PumpOutcome::kIdle};
  // Nothing in flight: the pump only ends the direction.
  return Pump(dir, src.io(), dst.io(), env, budget,
              other.state == DirectionState::kDone);
}

}  // namespace zrelay
