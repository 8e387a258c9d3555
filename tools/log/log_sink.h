// Where log lines go: stderr, or a file appended to and reopened when
// logrotate has moved it away (SIGUSR1).
//
//   auto sink = LogSink::OpenFile("/var/log/zrelayd/access.log", "access log");
//   sink.value()->Write("listener=web ...");  // any thread
//   Status reopened = sink.value()->Reopen();  // after the file was renamed
//
// The two destinations prefix a line differently:
//   stderr: "zrelayd: " + line      systemd's journal stamps stderr lines itself,
//                                   and a terminal reads them as they come
//   file:   "2026-12-01T03:04:05.123Z " + line   (UTC, milliseconds)
//
// Each line is written whole with one write(2); a file is opened with
// O_APPEND, so lines from any number of threads (and processes) never
// interleave. Writers take no lock: Reopen() dup()s the new file over the
// descriptor they write to, so a writer sees the old file or the new one,
// never a closed descriptor.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "engine/result.h"

namespace zrelay {

class LogSink {
 public:
  // stderr (not owned, never reopened).
  static std::unique_ptr<LogSink> Stderr();
  // Opens (creating, mode 0640 less the umask) `path` to append to. `what`
  // names it in errors: "access log '/var/log/a.log': Permission denied".
  static Result<std::unique_ptr<LogSink>> OpenFile(const std::string& path, std::string what);

  LogSink(const LogSink&) = delete;
  LogSink& operator=(const LogSink&) = delete;
  ~LogSink();

  // Writes the prefix, `line` and a newline. Any thread.
  void Write(std::string_view line) const;

  // Opens the path anew and writes there from now on. On failure the sink
  // keeps writing where it wrote, and the error names the file. stderr: Ok.
  Status Reopen();

  bool is_stderr() const { return path_.empty(); }
  const std::string& path() const { return path_; }  // empty for stderr

 private:
  LogSink(int fd, std::string path, std::string what)
      : fd_(fd), path_(std::move(path)), what_(std::move(what)) {}
  const int fd_;            // stays the same number across reopens
  const std::string path_;  // empty: stderr
  const std::string what_;
};

// "2026-12-01T03:04:05.123Z": ISO 8601, UTC, milliseconds.
std::string Iso8601Utc(std::chrono::system_clock::time_point when);

}  // namespace zrelay
