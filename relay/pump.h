// The pump: moves one direction's bytes from its source leg to its
// destination leg, through a pipe (splice) or a ring (copy), within a budget.
//
// Each turn first fills the vehicle, then flushes it. Filling takes staged
// bytes first (a leg's preread, a filter's output: relay/staged_pump.h) and
// reads the source only once none are left, so nothing read later can
// overtake them. A source read is bounded by the budget, the direction's
// rate limit (its token bucket) and its high watermark; with no tokens the
// direction sets rate_paused and its pair's timer resumes it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/event_loop.h"
#include "relay/buffer_pool.h"
#include "relay/direction.h"
#include "relay/pipe_pool.h"
#include "relay/transport.h"
#include "relay/worker_counters.h"

namespace zrelay {

// What a pump needs of its worker.
struct PumpEnv {
  Syscalls& sys;
  PipePool& pipes;
  BufferPool& buffers;
  WorkerCounters& stats;
  // Filtered directions read their raw bytes here before the filter; the
  // worker is single-threaded, so one serves all its pairs. Empty between
  // reads.
  RingBuffer& scratch;
};

enum class PumpOutcome {
  kIdle,         // waiting for an fd event
  kMore,         // budget spent with work left: run again next turn
  kDone,         // direction finished (destination shut for writing)
  kNoBuffer,     // the buffer pool is dry: retry when a buffer comes back
  kError,        // a leg failed: see err / on_source
};

struct PumpResult {
  PumpOutcome outcome = PumpOutcome::kIdle;
  int err = 0;             // errno for kError (0: see the transport's detail)
  bool on_source = false;  // kError: the source leg failed (else the destination)
};

// Runs `dir` until it would block, finishes, fails, or has read `budget`
// bytes. Returns borrowed pipes and rings when nothing is left in flight.
// `close_follows`: the pair closes both sockets as soon as this direction is
// done (the other one is), so a plain destination gets its FIN from close()
// and the shutdown() call is skipped.
PumpResult Pump(Direction& dir, Transport& src, Transport& dst, PumpEnv& env, size_t budget,
                bool close_follows = false);

// Returns `dir`'s pipe and ring to the pools (a pipe still holding bytes is
// closed, never pooled). For pairs that close.
void ReleaseDirection(Direction& dir, PumpEnv& env);

}  // namespace zrelay
