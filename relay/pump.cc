#include "relay/pump.h"

#include <algorithm>
#include <cerrno>

#include "relay/copy_pump.h"
#include "relay/staged_pump.h"

namespace zrelay {
namespace {

// Borrows a pipe (splice path) or a ring for a direction that is about to
// read. A splice direction copies this round instead when its pool is dry,
// or when bytes of its source are on their way through the loop's ring: a
// splice would overtake them, so the ring takes them first. Returns false
// when no ring is left either.
bool Borrow(Direction& dir, const Transport& src, PumpEnv& env) {
  if (dir.pipe || dir.ring) return true;
  if (dir.path == Path::kSplice && !src.receiving_now()) {
    dir.pipe = env.pipes.Take();
    if (dir.pipe) return true;
    env.stats.pipe_pool_exhausted.Add();
  }
  dir.ring = env.buffers.Take();
  return dir.ring != nullptr;
}

size_t Held(const Direction& dir) { return dir.pipe ? dir.pipe->bytes : dir.ring->size(); }

// Where reading pauses: the pair's high watermark, or the whole vehicle.
size_t HighWatermark(const Direction& dir) {
  const size_t capacity = dir.pipe ? dir.pipe->capacity : dir.ring->capacity();
  return dir.high_watermark > 0 ? std::min(dir.high_watermark, capacity) : capacity;
}

// Where a paused direction reads again: the pair's low watermark, or half
// of the high one.
size_t LowWatermark(const Direction& dir) {
  const size_t high = HighWatermark(dir);
  return dir.low_watermark > 0 ? std::min(dir.low_watermark, high) : high / 2;
}

// Pauses reading at the high watermark and resumes it at the low one. A
// pipe with no watermark of the pair's reads whenever it has room, as
// splice always did (pipe_may_be_full covers a pipe short of slots).
void UpdatePause(Direction& dir) {
  if (dir.pipe && dir.high_watermark == 0) return;
  const size_t held = Held(dir);
  if (held >= HighWatermark(dir)) {
    dir.watermark_paused = true;
  } else if (held <= LowWatermark(dir)) {
    dir.watermark_paused = false;
  }
}

// Bytes the vehicle may take now (0: none).
size_t Room(const Direction& dir) {
  if (dir.pipe && dir.pipe_may_be_full) return 0;
  if (dir.watermark_paused) return 0;
  const size_t held = Held(dir);
  const size_t high = HighWatermark(dir);
  return held < high ? high - held : 0;
}

// Gives back an empty direction's pipe or ring. This is also the only safe
// moment to move a direction to splice (auto mode's bulk, a splice
// direction whose staged bytes are delivered): nothing is in flight, so no
// byte can overtake another.
void ReturnIdle(Direction& dir, PumpEnv& env) {
  if (dir.pipe) {
    dir.pipe_may_be_full = false;
    env.pipes.Return(std::move(dir.pipe));
  }
  if (dir.ring) env.buffers.Return(std::move(dir.ring));
  dir.watermark_paused = false;
  if (dir.want_splice && dir.path == Path::kCopy) {
    dir.path = Path::kSplice;
    env.stats.splice_switches.Add();
  }
  if (dir.splice_after_staged) dir.path = Path::kSplice;
  dir.want_splice = false;
  dir.splice_after_staged = false;
}

// Reads the source once, within `max` bytes and the rate limit. Returns
// the transport's result; kWouldBlock also when the bucket is empty (the
// direction is then rate_paused).
IoResult ReadSource(Direction& dir, Transport& src, PumpEnv& env, size_t max) {
  TimePoint now{};
  if (dir.rate) {
    now = Clock::now();
    const uint64_t tokens = dir.rate->Available(now);
    if (tokens == 0) {
      dir.rate_paused = true;
      return {IoStatus::kWouldBlock, 0, 0};
    }
    max = static_cast<size_t>(std::min<uint64_t>(max, tokens));
  }
  IoResult r = dir.pipe     ? src.ReadToPipe(*dir.pipe, max)
               : dir.filter ? FilterIn(dir, src, env.scratch, max)
                            : CopyIn(dir, src, dir.auto_splice, max);
  // EAGAIN with bytes in the pipe may mean a pipe short of slots rather than
  // a drained socket: read again only after a flush made room.
  if (dir.pipe && r.status == IoStatus::kWouldBlock && dir.pipe->bytes > 0) {
    dir.pipe_may_be_full = true;
  }
  if (r.status == IoStatus::kOk && dir.rate) dir.rate->Consume(r.bytes, now);
  return r;
}

}  // namespace

PumpResult Pump(Direction& dir, Transport& src, Transport& dst, PumpEnv& env, size_t budget,
                bool close_follows) {
  if (dir.state == DirectionState::kDone) return {PumpOutcome::kDone};
  size_t read_total = 0;
  for (;;) {
    bool progress = false;

    // Fill: staged bytes first; the source only once they are all in.
    if (dir.staged_size() > 0) {
      if (!Borrow(dir, src, env)) return {PumpOutcome::kNoBuffer};
      if (const size_t room = Room(dir); room > 0) {
        progress = StageIn(dir, room) > 0;
        UpdatePause(dir);
      }
    } else if (dir.state == DirectionState::kOpen && read_total < budget && !dir.rate_paused &&
               src.ReadReady()) {
      if (!Borrow(dir, src, env)) return {PumpOutcome::kNoBuffer};
      if (const size_t room = Room(dir); room > 0) {
        IoResult r = ReadSource(dir, src, env, std::min(room, budget - read_total));
        if (r.status == IoStatus::kOk) {
          read_total += r.bytes;
          UpdatePause(dir);
          progress = true;
        } else if (r.status == IoStatus::kEof) {
          dir.state = DirectionState::kDraining;
          progress = true;
        } else if (r.status == IoStatus::kError) {
          if (dir.pipe && dir.pipe->bytes == 0 && (r.err == ENOSYS || r.err == EINVAL)) {
            // This fd cannot splice (HAProxy's raw_sock.c rule): copy from now on.
            dir.path = Path::kCopy;
            dir.auto_splice = false;
            ReturnIdle(dir, env);
            progress = true;
          } else {
            return {PumpOutcome::kError, r.err, true};
          }
        }
      }
    }

    // Flush: deliver what is in the vehicle.
    if ((dir.pipe || dir.ring) && Held(dir) > 0 && dst.WriteReady()) {
      bool spliced = dir.pipe != nullptr;
      IoResult w = spliced ? dst.WriteFromPipe(*dir.pipe) : CopyOut(dir, dst);
      if (w.status == IoStatus::kOk) {
        if (spliced) dir.pipe_may_be_full = false;
        dir.bytes += w.bytes;
        (spliced ? env.stats.bytes_spliced : env.stats.bytes_copied).Add(w.bytes);
        UpdatePause(dir);
        progress = true;
      } else if (w.status == IoStatus::kError) {
        return {PumpOutcome::kError, w.err, false};
      }
    }

    if (dir.in_flight() == 0) {
      ReturnIdle(dir, env);
      if (dir.state == DirectionState::kDraining) {
        // FIN goes out only once everything before it has been delivered.
        if (close_follows && dst.close_sends_fin()) {
          dir.state = DirectionState::kDone;
          return {PumpOutcome::kDone};
        }
        IoResult s = dst.ShutdownWrite();
        if (s.status == IoStatus::kOk) {
          dir.state = DirectionState::kDone;
          return {PumpOutcome::kDone};
        }
        if (s.status == IoStatus::kError) return {PumpOutcome::kError, s.err, false};
        return {PumpOutcome::kIdle};  // close_notify waits for a writable socket
      }
    }
    if (!progress) break;
  }
  if (dir.state == DirectionState::kOpen && read_total >= budget && src.ReadReady()) {
    return {PumpOutcome::kMore};
  }
  return {PumpOutcome::kIdle};
}

void ReleaseDirection(Direction& dir, PumpEnv& env) {
  if (dir.pipe) env.pipes.Return(std::move(dir.pipe));
  if (dir.ring) env.buffers.Return(std::move(dir.ring));
}

}  // namespace zrelay
