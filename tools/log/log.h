// zrelayd's own log: one line per start, stop, reload, state change and
// error, each written whole with one write(2) so lines from several threads
// never interleave. Lines go to stderr, or to the [log] file once
// LogToFile() opened it (see tools/log/log_sink.h for both formats).
//
//   Logf("listener %s: listening on %s", name.c_str(), address.c_str());
//   stderr: "zrelayd: listener web: listening on 127.0.0.1:8080\n"
//   file:   "2026-12-01T03:04:05.123Z listener web: listening on 127.0.0.1:8080\n"
#pragma once

#include <string>
#include <string_view>

#include "engine/result.h"

namespace zrelay {

// Writes `line` and a newline to the log. Any thread.
void Log(std::string_view line);

// Log() of a printf-style line (no trailing newline).
void Logf(const char* format, ...) __attribute__((format(printf, 1, 2)));

// From now on Log() appends to the file at `path` (created if missing).
// Call before any other thread logs. The error names the file:
// "log file '/var/log/zrelayd/zrelayd.log': Permission denied".
Status LogToFile(const std::string& path);

// Reopens the log file (SIGUSR1, after logrotate moved it). On failure the
// lines keep going to the file they went to, and the error says why. Without
// a log file: Ok, nothing to do.
Status ReopenLogFile();

}  // namespace zrelay
