// IoBackend: which kernel interface an event loop waits with (and, with
// io_uring, submits its requests through).
#pragma once

#include <string>

namespace zrelay {

// kAuto: io_uring when this process may set one up (it may be disabled by
// sysctl, filtered by seccomp, or missing from an old kernel), else epoll.
enum class IoBackend { kEpoll, kUring, kAuto };

// "epoll", "uring", "auto".
const char* IoBackendName(IoBackend io);
// Parses IoBackendName()'s spellings; false for anything else.
bool ParseIoBackend(const std::string& text, IoBackend* io);

}  // namespace zrelay
