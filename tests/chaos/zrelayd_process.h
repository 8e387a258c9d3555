// zrelayd as a child process, watched from outside: its stderr collected
// line by line (so --log-closes never blocks it on a full pipe), its open
// descriptors counted from /proc, and its totals read after SIGTERM.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/address.h"
#include "engine/clock.h"
#include "engine/result.h"

namespace zrelay::chaos {

// The zrelayd binary from the runfiles of the running test or tool
// (TEST_SRCDIR, RUNFILES_DIR, or `argv0`.runfiles).
std::string FindZrelayd(const char* argv0);

// zrelayd's open descriptors by kind: "socket", "pipe", or the link target
// itself ("anon_inode:[eventpoll]", "/dev/null", ...).
struct FdCensus {
  std::map<std::string, int> by_kind;
  int total = 0;
  struct Pipe {
    int ends = 0;        // how many of its two ends zrelayd holds
    uint64_t bytes = 0;  // waiting in it (FIONREAD through /proc/PID/fd)
  };
  std::map<std::string, Pipe> pipes;  // by "pipe:[inode]"
};
Result<FdCensus> TakeFdCensus(pid_t pid);
// Everything but pipes, which zrelayd keeps pooled: "socket 3 -> 5, ...".
// Empty when `now` has the same non-pipe descriptors as `baseline`.
std::string NonPipeDifference(const FdCensus& baseline, const FdCensus& now);

// One --log-closes line.
struct CloseLine {
  std::string cause;  // CloseCauseName(): "done", "reset", ...
  uint64_t up = 0;    // client -> backend bytes
  uint64_t down = 0;  // backend -> client bytes
  std::string text;
};
// Parses an access line on stderr (tools/log/access_log.h):
// "zrelayd: ... bytes_up=U bytes_down=D duration_ms=T cause=CAUSE ...".
bool ParseCloseLine(const std::string& line, CloseLine* out);
// Parses the "zrelayd: totals: name N, name N (name N, ...)" line into
// name -> N ("accepted", "pipe pool exhausted", "bytes client->backend", ...).
std::map<std::string, uint64_t> ParseTotals(const std::string& line);

class ZrelaydProcess {
 public:
  // Runs `wrapper` (e.g. {"prlimit", "--nofile=64:64", "--"}; empty: none)
  // then zrelayd with `args`, and waits for its "listening on" banner.
  static Result<std::unique_ptr<ZrelaydProcess>> Start(
      const std::string& zrelayd, const std::vector<std::string>& args,
      const std::vector<std::string>& wrapper = {});
  ~ZrelaydProcess();  // SIGKILL if still running
  ZrelaydProcess(const ZrelaydProcess&) = delete;
  ZrelaydProcess& operator=(const ZrelaydProcess&) = delete;

  pid_t pid() const { return pid_; }
  const Address& address() const { return address_; }

  // SIGTERM, then waits up to `deadline` for the exit and the end of its
  // stderr. Returns the exit status (128 + signal when killed by one).
  Result<int> Stop(Duration deadline);

  // Stderr lines so far (all of them once Stop() returned).
  std::vector<std::string> Lines() const;
  // The totals line, empty before Stop().
  std::string TotalsLine() const;
  // Sanitizer reports (ASan, LSan, UBSan) found in stderr, verbatim.
  std::string SanitizerReport() const;

 private:
  ZrelaydProcess() = default;
  void ReadStderr(int fd);
  bool WaitForLine(const std::string& needle, Duration deadline);

  pid_t pid_ = -1;
  Address address_;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;  // guarded by mu_
  bool eof_ = false;                // guarded by mu_
};

}  // namespace zrelay::chaos
