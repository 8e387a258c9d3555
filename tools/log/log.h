// zrelayd's own log: one line per start, stop, reload, state change and
// error, each written whole with one write(2) so lines from several threads
// never interleave. Lines go to stderr.
//
//   Logf("listener %s: listening on %s", name.c_str(), address.c_str());
//   -> "zrelayd: listener web: listening on 127.0.0.1:8080\n"
#pragma once

#include <string_view>

namespace zrelay {

// Writes "zrelayd: " + line + "\n". Any thread.
void Log(std::string_view line);

// Log() of a printf-style line (no trailing newline).
void Logf(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace zrelay
