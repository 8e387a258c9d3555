// Splice steps: socket -> pipe and pipe -> socket, zero copy.
#pragma once

#include <cstddef>

#include "engine/event_loop.h"
#include "engine/syscalls.h"
#include "relay/direction.h"
#include "relay/transport.h"

namespace zrelay {

// Splices up to `max` bytes from `src` into dir.pipe (which must have room).
// kOk: bytes > 0 now in the pipe. kEof: the source sent FIN. kWouldBlock:
// with an empty pipe the socket is drained (its readable flag is cleared);
// with bytes in the pipe the pipe may be full (dir.pipe_may_be_full is set).
// kError: errno in err; ENOSYS/EINVAL mean this fd cannot splice.
IoResult SpliceIn(Direction& dir, FdWatch& src, Syscalls& sys, size_t max);

// Splices dir.pipe's bytes into `dst`. kOk: bytes > 0 delivered.
// kWouldBlock: the socket is full (its writable flag is cleared). kError:
// errno in err (EPIPE/ECONNRESET: the peer is gone).
IoResult SpliceOut(Direction& dir, FdWatch& dst, Syscalls& sys);

}  // namespace zrelay
