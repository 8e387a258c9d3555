// Staged bytes: what waits ahead of the source in a direction (a leg's
// preread, a filter's output) and the filtered read that makes them.
#pragma once

#include <cstddef>

#include "relay/direction.h"
#include "relay/ring_buffer.h"
#include "relay/transport.h"

namespace zrelay {

// Moves up to `max` staged bytes into dir.ring; returns how many. The
// staged string is freed once all of it went in.
size_t StageIn(Direction& dir, size_t max);

// A filtered direction's read: up to `max` raw bytes from `src` into
// `scratch` (the worker's, empty between calls), through dir.filter into
// dir.staged. On EOF the filter's OnEnd output is staged too, so the
// destination gets it before its FIN. Returns the transport's result (kOk:
// `bytes` raw bytes were read, whatever the filter made of them).
IoResult FilterIn(Direction& dir, Transport& src, RingBuffer& scratch, size_t max);

}  // namespace zrelay
