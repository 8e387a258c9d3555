#include "relay/pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

namespace zrelay {

PipePool::PipePool(size_t pipe_size, size_t cap) : pipe_size_(pipe_size), cap_(cap) {}

std::unique_ptr<KernelPipe> PipePool::Take() {
  std::unique_ptr<KernelPipe> pipe;
  if (!free_.empty()) {
    pipe = std::move(free_.back());
    free_.pop_back();
    --stats_.pooled;
  } else if (stats_.in_use < cap_) {
    pipe = Create();
  }
  if (!pipe) {
    ++stats_.exhausted;
    return nullptr;
  }
  ++stats_.in_use;
  return pipe;
}

void PipePool::Return(std::unique_ptr<KernelPipe> pipe) {
  --stats_.in_use;
  if (pipe->bytes != 0) {
    ++stats_.discarded_full;
    return;  // closed by the destructor
  }
  free_.push_back(std::move(pipe));
  ++stats_.pooled;
}

std::unique_ptr<KernelPipe> PipePool::Create() {
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return nullptr;
  auto pipe = std::make_unique<KernelPipe>();
  pipe->read_end.Reset(fds[0]);
  pipe->write_end.Reset(fds[1]);
  // Past the per-user soft limit the kernel refuses to grow pipes: keep the
  // default size then; a small pipe still splices.
  int granted = ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(pipe_size_));
  if (granted < 0) granted = ::fcntl(fds[1], F_GETPIPE_SZ);
  pipe->capacity = granted > 0 ? static_cast<size_t>(granted) : 65536;
  ++stats_.created;
  return pipe;
}

}  // namespace zrelay
