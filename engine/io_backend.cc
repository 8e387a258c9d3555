#include "engine/io_backend.h"

namespace zrelay {

const char* IoBackendName(IoBackend io) {
  switch (io) {
    case IoBackend::kEpoll:
      return "epoll";
    case IoBackend::kUring:
      return "uring";
    case IoBackend::kAuto:
      return "auto";
  }
  return "?";
}

bool ParseIoBackend(const std::string& text, IoBackend* io) {
  for (IoBackend b : {IoBackend::kEpoll, IoBackend::kUring, IoBackend::kAuto}) {
    if (text == IoBackendName(b)) {
      *io = b;
      return true;
    }
  }
  return false;
}

}  // namespace zrelay
