#include "engine/check.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace zrelay::check_internal {
namespace {

// One write(2) of the whole line: no stdio buffering (it may be what is
// broken) and no interleaving with another thread's output.
[[noreturn]] void Abort(const char* file, int line, const char* condition, const char* message) {
  char buf[1024];
  int n = std::snprintf(buf, sizeof(buf), "zrelay: CHECK failed at %s:%d: %s%s%s\n", file, line,
                        condition, *message != '\0' ? ": " : "", message);
  size_t len = n < 0 ? 0 : static_cast<size_t>(n);
  if (len >= sizeof(buf)) {  // cut short: still end the line
    len = sizeof(buf);
    buf[len - 1] = '\n';
  }
  (void)!::write(STDERR_FILENO, buf, len);
  std::abort();
}

}  // namespace

void Fail(const char* file, int line, const char* condition) { Abort(file, line, condition, ""); }

void Fail(const char* file, int line, const char* condition, const char* format, ...) {
  char message[768];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  Abort(file, line, condition, message);
}

}  // namespace zrelay::check_internal
