#include "relay/copy_pump.h"

#include "engine/check.h"

namespace zrelay {

IoResult CopyIn(Direction& dir, Transport& src, bool may_splice) {
  RingBuffer& ring = *dir.ring;
  // A read into no space returns 0, which would read as EOF.
  ZR_CHECK(!ring.full(), "read into a full ring (%zu bytes)", ring.size());
  size_t offered = ring.free_space();
  IoResult r = src.Read(ring);
  if (r.status == IoStatus::kOk) {
    if (may_splice && r.bytes == offered && offered >= ring.capacity() / 2) {
      dir.want_splice = true;
    }
    if (ring.full()) dir.ring_paused = true;
  }
  return r;
}

IoResult CopyOut(Direction& dir, Transport& dst, size_t low_watermark) {
  IoResult r = dst.Write(*dir.ring);
  if (r.status == IoStatus::kOk && dir.ring_paused && dir.ring->size() <= low_watermark) {
    dir.ring_paused = false;
  }
  return r;
}

}  // namespace zrelay
