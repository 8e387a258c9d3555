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
    counters_.pooled.Sub();
  } else if (counters_.in_use.Get() < cap_) {
    pipe = Create();
  }
  if (!pipe) {
    counters_.exhausted.Add();
    return nullptr;
  }
  counters_.in_use.Add();
  return pipe;
}

void PipePool::Return(std::unique_ptr<KernelPipe> pipe) {
  counters_.in_use.Sub();
  if (pipe->bytes != 0) {
    counters_.discarded_full.Add();
    return;  // closed by the destructor
  }
  free_.push_back(std::move(pipe));
  counters_.pooled.Add();
}

PipePoolStats PipePool::stats() const {
  PipePoolStats s;
  s.in_use = counters_.in_use.Get();
  s.pooled = counters_.pooled.Get();
  s.exhausted = counters_.exhausted.Get();
  s.created = counters_.created.Get();
  s.discarded_full = counters_.discarded_full.Get();
  return s;
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
  counters_.created.Add();
  return pipe;
}

}  // namespace zrelay
