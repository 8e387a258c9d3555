// A Syscalls seam for pump tests: passes every call through to the kernel
// unless told to make the n-th call of an operation fail with an errno
// (without reaching the kernel) or move fewer bytes, and counts the calls of
// each operation so a test can pin the pump's syscall pattern.
#pragma once

#include <sys/stat.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <map>
#include <utility>

#include "engine/syscalls.h"

namespace zrelay::testing {

enum class Op { kReadv, kWritev, kSpliceIn, kSpliceOut, kShutdown };

// Pass-through Syscalls that can make the n-th call of an operation fail
// with an errno (without reaching the kernel) or move fewer bytes.
class FaultySyscalls final : public Syscalls {
 public:
  // Call number `nth` (1-based, counting that op's calls since construction)
  // fails with `err`.
  void FailNth(Op op, int nth, int err) { rules_[{op, nth}] = Rule{err, 0}; }
  // Call number `nth` goes to the kernel with its length clamped to `max`.
  void ShortNth(Op op, int nth, size_t max) { rules_[{op, nth}] = Rule{0, max}; }
  // Every call of `op` from now on fails with `err` (0: stop failing).
  void FailAll(Op op, int err) { fail_all_[op] = err; }

  int calls(Op op) const {
    auto it = calls_.find(op);
    return it == calls_.end() ? 0 : it->second;
  }
  int injected() const { return injected_; }

  SysResult Readv(int fd, const struct iovec* iov, int iovcnt) override {
    Rule r = Next(Op::kReadv);
    if (r.err) return Inject(r.err);
    if (r.max == 0) return Syscalls::Readv(fd, iov, iovcnt);
    struct iovec one = {iov[0].iov_base, std::min(iov[0].iov_len, r.max)};
    return Syscalls::Readv(fd, &one, 1);
  }
  SysResult Writev(int fd, const struct iovec* iov, int iovcnt) override {
    Rule r = Next(Op::kWritev);
    if (r.err) return Inject(r.err);
    if (r.max == 0) return Syscalls::Writev(fd, iov, iovcnt);
    struct iovec one = {iov[0].iov_base, std::min(iov[0].iov_len, r.max)};
    return Syscalls::Writev(fd, &one, 1);
  }
  SysResult Splice(int fd_in, int fd_out, size_t len, unsigned int flags) override {
    // A splice whose source is a socket fills the pipe; else it empties it.
    struct stat st {};
    bool in = ::fstat(fd_in, &st) == 0 && S_ISSOCK(st.st_mode);
    Rule r = Next(in ? Op::kSpliceIn : Op::kSpliceOut);
    if (r.err) return Inject(r.err);
    return Syscalls::Splice(fd_in, fd_out, r.max ? std::min(len, r.max) : len, flags);
  }
  SysResult Shutdown(int fd, int how) override {
    Rule r = Next(Op::kShutdown);
    if (r.err) return Inject(r.err);
    return Syscalls::Shutdown(fd, how);
  }

 private:
  struct Rule {
    int err = 0;
    size_t max = 0;
  };
  Rule Next(Op op) {
    int n = ++calls_[op];
    auto all = fail_all_.find(op);
    if (all != fail_all_.end() && all->second != 0) return Rule{all->second, 0};
    auto it = rules_.find({op, n});
    return it == rules_.end() ? Rule{} : it->second;
  }
  SysResult Inject(int err) {
    ++injected_;
    return SysResult{-1, err};
  }

  std::map<std::pair<Op, int>, Rule> rules_;
  std::map<Op, int> fail_all_;
  std::map<Op, int> calls_;
  int injected_ = 0;
};

}  // namespace zrelay::testing
