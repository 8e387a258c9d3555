#include "relay/pump.h"

#include <cerrno>

#include "relay/copy_pump.h"
#include "relay/splice_pump.h"

namespace zrelay {
namespace {

// Borrows a pipe (splice path) or a ring for a direction that is about to
// read. A splice direction whose pool is dry copies this round instead.
// Returns false when no ring is left either.
bool Borrow(Direction& dir, PumpEnv& env) {
  if (dir.pipe || dir.ring) return true;
  if (dir.path == Path::kSplice) {
    dir.pipe = env.pipes.Take();
    if (dir.pipe) return true;
    env.stats.pipe_pool_exhausted.Add();
  }
  dir.ring = env.buffers.Take();
  return dir.ring != nullptr;
}

bool HasRoom(const Direction& dir) {
  if (dir.pipe) return dir.pipe->bytes < dir.pipe->capacity && !dir.pipe_may_be_full;
  return !dir.ring_paused && !dir.ring->full();
}

// Gives back an empty direction's pipe or ring. This is also the only safe
// moment for auto mode to move a direction to splice: nothing is in flight,
// so no byte can overtake another.
void ReturnIdle(Direction& dir, PumpEnv& env) {
  if (dir.pipe) {
    dir.pipe_may_be_full = false;
    env.pipes.Return(std::move(dir.pipe));
  }
  if (dir.ring) {
    dir.ring_paused = false;
    env.buffers.Return(std::move(dir.ring));
  }
  if (dir.want_splice && dir.path == Path::kCopy) {
    dir.path = Path::kSplice;
    env.stats.splice_switches.Add();
  }
  dir.want_splice = false;
}

}  // namespace

PumpResult Pump(Direction& dir, PumpLeg src, PumpLeg dst, PumpEnv& env, size_t budget,
                bool close_follows) {
  if (dir.state == DirectionState::kDone) return {PumpOutcome::kDone};
  size_t read_total = 0;
  for (;;) {
    bool progress = false;

    // Fill: read while the source has data and the vehicle has room.
    if (dir.state == DirectionState::kOpen && read_total < budget && src.io.ReadReady()) {
      if (!Borrow(dir, env)) return {PumpOutcome::kNoBuffer};
      if (HasRoom(dir)) {
        IoResult r = dir.pipe ? SpliceIn(dir, src.watch, env.sys, budget - read_total)
                              : CopyIn(dir, src.io, dir.auto_splice);
        if (r.status == IoStatus::kOk) {
          read_total += r.bytes;
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

    // Flush: deliver what is in flight.
    if (dir.in_flight() > 0 && dst.io.WriteReady()) {
      bool spliced = dir.pipe != nullptr;
      IoResult w = spliced ? SpliceOut(dir, dst.watch, env.sys)
                           : CopyOut(dir, dst.io, env.watermark_low);
      if (w.status == IoStatus::kOk) {
        dir.bytes += w.bytes;
        (spliced ? env.stats.bytes_spliced : env.stats.bytes_copied).Add(w.bytes);
        progress = true;
      } else if (w.status == IoStatus::kError) {
        return {PumpOutcome::kError, w.err, false};
      }
    }

    if (dir.in_flight() == 0) {
      ReturnIdle(dir, env);
      if (dir.state == DirectionState::kDraining) {
        // FIN goes out only once everything before it has been delivered.
        if (close_follows && dst.io.close_sends_fin()) {
          dir.state = DirectionState::kDone;
          return {PumpOutcome::kDone};
        }
        IoResult s = dst.io.ShutdownWrite();
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
  if (dir.state == DirectionState::kOpen && read_total >= budget && src.io.ReadReady()) {
    return {PumpOutcome::kMore};
  }
  return {PumpOutcome::kIdle};
}

void ReleaseDirection(Direction& dir, PumpEnv& env) {
  if (dir.pipe) env.pipes.Return(std::move(dir.pipe));
  if (dir.ring) env.buffers.Return(std::move(dir.ring));
}

}  // namespace zrelay
