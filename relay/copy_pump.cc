#include "relay/copy_pump.h"

#include <algorithm>

#include "engine/check.h"

namespace zrelay {

IoResult CopyIn(Direction& dir, Transport& src, bool may_splice, size_t max) {
  RingBuffer& ring = *dir.ring;
  // A read into no space returns 0, which would read as EOF.
  ZR_CHECK(!ring.full() && max > 0, "read into a full ring (%zu bytes, max %zu)", ring.size(),
           max);
  size_t offered = std::min(ring.free_space(), max);
  IoResult r = src.Read(ring, offered);
  if (r.status == IoStatus::kOk && may_splice && r.bytes == offered &&
      offered >= ring.capacity() / 2) {
    dir.want_splice = true;
  }
  return r;
}

IoResult CopyOut(Direction& dir, Transport& dst) { return dst.Write(*dir.ring); }

}  // namespace zrelay
