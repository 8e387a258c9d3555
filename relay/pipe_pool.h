// PipePool: a worker's kernel pipes for splice(), lent out while bytes are in
// flight and taken back when empty, so an idle pair holds no pipe and a few
// pipes serve thousands of pairs (HAProxy's pipe.c does the same).
//
// Rules learned the hard way (ARCHITECTURE.md, "Pitfalls"):
//  - the kernel may grant less than the F_SETPIPE_SZ request (pipe-max-size,
//    pipe-user-pages-soft): the pipe's real size is what fcntl returns;
//  - a pipe that still holds bytes is closed, never pooled, or the next pair
//    would receive another pair's data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/unique_fd.h"
#include "relay/relaxed_counter.h"

namespace zrelay {

struct KernelPipe {
  UniqueFd read_end;
  UniqueFd write_end;
  size_t capacity = 0;  // bytes, as granted by the kernel
  size_t bytes = 0;     // bytes spliced in and not yet spliced out
};

struct PipePoolStats {
  uint64_t in_use = 0;
  uint64_t pooled = 0;
  uint64_t exhausted = 0;       // Take() refused: at cap, or pipe2 failed
  uint64_t created = 0;
  uint64_t discarded_full = 0;  // returned with bytes inside: closed
};

class PipePool {
 public:
  // `pipe_size`: F_SETPIPE_SZ request per pipe. `cap`: pipes in use plus
  // pooled, at most.
  PipePool(size_t pipe_size, size_t cap);

  // A pipe to splice through, or null when the pool is at its cap (or the
  // kernel refused a new pipe): the caller then copies instead.
  std::unique_ptr<KernelPipe> Take();
  // Takes a pipe back: pooled when empty, closed when it still holds bytes.
  void Return(std::unique_ptr<KernelPipe> pipe);

  // Any thread: the pool's worker writes the counters, Engine::Metrics
  // reads them while it runs.
  PipePoolStats stats() const;

 private:
  std::unique_ptr<KernelPipe> Create();

  size_t pipe_size_;
  size_t cap_;
  std::vector<std::unique_ptr<KernelPipe>> free_;
  struct {
    RelaxedCounter in_use, pooled, exhausted, created, discarded_full;
  } counters_;
};

}  // namespace zrelay
