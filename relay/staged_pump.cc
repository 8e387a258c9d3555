#include "relay/staged_pump.h"

#include <algorithm>
#include <string_view>

#include "engine/check.h"

namespace zrelay {

size_t StageIn(Direction& dir, size_t max) {
  RingBuffer& ring = *dir.ring;
  size_t moved = 0;
  struct iovec iov[2];
  const int n = ring.FreeIovecs(iov);
  for (int i = 0; i < n && moved < max && dir.staged_size() > 0; ++i) {
    const size_t len = std::min({iov[i].iov_len, max - moved, dir.staged_size()});
    std::copy_n(dir.staged.data() + dir.staged_offset, len, static_cast<char*>(iov[i].iov_base));
    dir.staged_offset += len;
    moved += len;
  }
  ring.Commit(moved);
  if (dir.staged_size() == 0) {
    // Give the memory back: a preread or a filter's output may be large.
    std::string().swap(dir.staged);
    dir.staged_offset = 0;
  }
  return moved;
}

IoResult FilterIn(Direction& dir, Transport& src, RingBuffer& scratch, size_t max) {
  ZR_CHECK(scratch.empty() && max > 0, "filtered read with %zu scratch bytes, max %zu",
           scratch.size(), max);
  IoResult r = src.Read(scratch, std::min(max, scratch.capacity()));
  if (r.status == IoStatus::kOk) {
    // An empty ring rewinds, so what was read is one contiguous run.
    const struct iovec data = scratch.DataSpan();
    dir.filter->OnData(std::string_view(static_cast<const char*>(data.iov_base), data.iov_len),
                       dir.staged);
    scratch.Clear();
  } else if (r.status == IoStatus::kEof) {
    dir.filter->OnEnd(dir.staged);
  }
  return r;
}

}  // namespace zrelay
