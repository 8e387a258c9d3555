// UringBuffer: the 16 KiB buffer a send or receive through the loop's ring
// carries (UringBufferedOp), taken from a per-thread free list and given
// back to it.
//
// Why not new/delete per request: a receive needs a buffer of its own for
// every small message, and allocating and freeing 16 KiB that often made
// glibc grow and trim its per-thread heap over and over, with a page fault
// per page on growth and, on trim, an madvise(MADV_DONTNEED) whose TLB
// shootdown interrupts every other CPU running the process. On a 2-core VM
// under 50 request/response connections that took about a third of the
// relay's CPU. Reused buffers cost neither.
//
// Each thread keeps at most kKeptPerThread buffers (2 MiB); more go back to
// the allocator. A buffer may be given back on any thread (a pair destroyed
// at shutdown): it joins that thread's list, or is freed once the thread's
// list is gone.
#pragma once

#include <cstddef>
#include <memory>

namespace zrelay {

struct UringBufferRelease {
  void operator()(char* bytes) const noexcept;
};
using UringBuffer = std::unique_ptr<char[], UringBufferRelease>;

inline constexpr size_t kUringBufferBytes = 16 << 10;
inline constexpr size_t kKeptPerThread = 128;

// A buffer of kUringBufferBytes, from this thread's list when it has one.
UringBuffer TakeUringBuffer();

// Buffers this thread keeps for reuse now (for tests).
size_t UringBuffersKept();

}  // namespace zrelay
