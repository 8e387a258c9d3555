// Copy steps: leg -> ring buffer and ring buffer -> leg, through a
// Transport (readv/writev for plain legs, SSL_read/SSL_write for TLS).
#pragma once

#include <cstddef>

#include "relay/direction.h"
#include "relay/transport.h"

namespace zrelay {

// Reads from `src` into dir.ring (which must have room). Returns the
// transport's result. Sets dir.ring_paused when the ring fills (the high
// watermark), and dir.want_splice when `may_splice` and the read filled at
// least half the ring: a read that big means bulk is flowing, and bulk is
// what splice does cheaper; small request/response traffic never fills it
// and stays on the copy path, which costs fewer syscalls per message.
IoResult CopyIn(Direction& dir, Transport& src, bool may_splice);

// Writes dir.ring's data to `dst`. Clears dir.ring_paused once the ring has
// drained to `low_watermark` bytes or fewer.
IoResult CopyOut(Direction& dir, Transport& dst, size_t low_watermark);

}  // namespace zrelay
