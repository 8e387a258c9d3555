// Programs the IMAP tests start: the gateway, scripted backends, client
// scripts. Each wait has a deadline, and a Child is stopped by its PID when
// it goes out of scope.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "engine/clock.h"

namespace zrelay::testing {

// The path of a file of this test's runfiles ("tools/imap/zrelay-imap").
std::string Runfile(const std::string& path);

class Child {
 public:
  // Starts argv[0] (a path, or a name looked up in PATH) with its stderr
  // readable through ReadUntil; stdout is left alone.
  explicit Child(const std::vector<std::string>& argv);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool started() const { return pid_ > 0; }
  // Reads stderr until `needle` shows up, EOF or 10 s; returns all read so far.
  std::string ReadUntil(const std::string& needle);
  // SIGTERM, then the exit status (128 + signal for a death by signal), or
  // -1 after 10 s (the child is then killed).
  int Stop();

 private:
  pid_t pid_ = -1;
  int err_fd_ = -1;
  std::string err_;
};

// Runs argv to its end: exit status (-1 when it took longer than `timeout`
// and was killed) and its stdout and stderr, interleaved.
struct Finished {
  int exit = -1;
  std::string output;
};
Finished RunToEnd(const std::vector<std::string>& argv, Duration timeout);

}  // namespace zrelay::testing
