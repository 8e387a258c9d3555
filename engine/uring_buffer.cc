#include "engine/uring_buffer.h"

#include <vector>

namespace zrelay {
namespace {

struct FreeList {
  FreeList() { buffers.reserve(kKeptPerThread); }  // no allocation when giving back
  ~FreeList();
  std::vector<char*> buffers;
};

// Trivially destructible, so still readable while the thread's list is
// being destroyed and after: a buffer given back then is freed instead.
thread_local bool free_list_gone = false;
thread_local FreeList free_list;

FreeList::~FreeList() {
  free_list_gone = true;
  for (char* bytes : buffers) delete[] bytes;
}

}  // namespace

void UringBufferRelease::operator()(char* bytes) const noexcept {
  if (!free_list_gone && free_list.buffers.size() < kKeptPerThread) {
    free_list.buffers.push_back(bytes);
    return;
  }
  delete[] bytes;
}

UringBuffer TakeUringBuffer() {
  if (!free_list_gone && !free_list.buffers.empty()) {
    char* bytes = free_list.buffers.back();
    free_list.buffers.pop_back();
    return UringBuffer(bytes);
  }
  return UringBuffer(new char[kUringBufferBytes]);
}

size_t UringBuffersKept() { return free_list_gone ? 0 : free_list.buffers.size(); }

}  // namespace zrelay
