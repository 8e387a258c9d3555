// Copy steps: leg -> ring buffer and ring buffer -> leg, through a
// Transport (readv/writev for plain legs, SSL_read/SSL_write for TLS).
#pragma once

#include <cstddef>

#include "relay/direction.h"
#include "relay/transport.h"

namespace zrelay {

// Reads up to `max` bytes from `src` into dir.ring (which must have room).
// Returns the transport's result. Sets dir.want_splice when `may_splice`
// and the read filled all it was offered, at least half the ring: a read
// that big means bulk is flowing, and bulk is what splice does cheaper;
// small request/response traffic never fills it and stays on the copy
// path, which costs fewer syscalls per message.
IoResult CopyIn(Direction& dir, Transport& src, bool may_splice, size_t max);

// Writes dir.ring's data to `dst`.
IoResult CopyOut(Direction& dir, Transport& dst);

}  // namespace zrelay
