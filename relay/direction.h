// Direction: one way of a pair (A->B or B->A), moved by the pumps.
//
//   kOpen --(source EOF)--> kDraining --(in-flight bytes delivered,
//   destination's write side shut)--> kDone
//
// Bytes in flight live in a pipe (splice path) or a ring (copy path),
// borrowed from the worker's pools only while non-empty: an idle direction
// holds neither.
#pragma once

#include <cstdint>
#include <memory>

#include "relay/pipe_pool.h"
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
  // Reading paused at the ring's high watermark until it drains to the low.
  bool ring_paused = false;
  std::unique_ptr<KernelPipe> pipe;
  std::unique_ptr<RingBuffer> ring;
  uint64_t bytes = 0;  // delivered to the destination

  size_t in_flight() const {
    return (pipe ? pipe->bytes : 0) + (ring ? ring->size() : 0);
  }
};

}  // namespace zrelay
