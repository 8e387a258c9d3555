// Direction: one way of a pair (A->B or B->A), moved by the pumps.
//
//   kOpen --(source EOF)--> kDraining --(in-flight bytes delivered,
//   destination's write side shut)--> kDone
//
// Bytes in flight live in a pipe (splice path) or a ring (copy path),
// borrowed from the worker's pools only while non-empty: an idle direction
// holds neither. Ahead of them may wait staged bytes: a leg's preread, or
// what a filter made of the last read. They go into the ring before the
// source is read again, so they keep their place in the stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "relay/pipe_pool.h"
#include "relay/rate_limiter.h"
#include "relay/relay.h"
#include "relay/ring_buffer.h"

namespace zrelay {

enum class DirectionState {
  kOpen,      // reading the source
  kDraining,  // source finished; delivering what is in flight, then FIN
  kDone,      // destination's write side is shut
};

enum class Path {
  kSplice,  // socket -> pipe -> socket, in the kernel
  kCopy,    // socket -> ring buffer -> socket, through user space
};

struct Direction {
  DirectionState state = DirectionState::kOpen;
  Path path = Path::kCopy;
  // Auto mode, both legs plain: this direction may move to splice.
  bool auto_splice = false;
  // Auto mode: switch to splice once the ring drains, because a read filled
  // it (see CopyIn for the rule).
  bool want_splice = false;
  // Splice from the source returned EAGAIN while the pipe held bytes: the
  // pipe may be full (its slots, not its bytes, ran out), so do not read
  // again until some bytes went out (HAProxy's raw_sock.c does the same).
  bool pipe_may_be_full = false;
  // Reading paused at the high watermark until the ring (or pipe) drains
  // to the low one.
  bool watermark_paused = false;
  // PairOptions' watermarks for this pair; 0: the vehicle's own (the whole
  // ring and half of it; a pipe pauses only when full).
  size_t high_watermark = 0;
  size_t low_watermark = 0;
  std::unique_ptr<KernelPipe> pipe;
  std::unique_ptr<RingBuffer> ring;
  uint64_t bytes = 0;  // delivered to the destination

  // Bytes to deliver before anything read from the source from here on
  // (staged[staged_offset..]). The direction copies while there are any.
  std::string staged;
  size_t staged_offset = 0;
  // A splice direction that copies only until its preread is delivered.
  bool splice_after_staged = false;
  // Sees every byte read from the source; its output is what is delivered.
  std::unique_ptr<Filter> filter;
  // The way's rate limit; reading stops while it has no tokens.
  std::optional<TokenBucket> rate;
  bool rate_paused = false;  // a timer resumes it (the pair's rate timer)

  size_t staged_size() const { return staged.size() - staged_offset; }
  // Bytes read (or staged) and not yet delivered.
  size_t in_flight() const {
    return (pipe ? pipe->bytes : 0) + (ring ? ring->size() : 0) + staged_size();
  }
};

}  // namespace zrelay
