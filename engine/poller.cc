#include "engine/poller.h"

#include "engine/epoll_poller.h"
#include "engine/uring_poller.h"

namespace zrelay {

Result<std::unique_ptr<Poller>> Poller::Create(IoBackend io) {
  switch (io) {
    case IoBackend::kEpoll:
      return EpollPoller::Create();
    case IoBackend::kUring:
      return UringPoller::Create();
    case IoBackend::kAuto: {
      Result<std::unique_ptr<Poller>> uring = UringPoller::Create();
      if (uring.ok()) return uring;
      return EpollPoller::Create();
    }
  }
  return Error::Invalid("unknown io backend");
}

}  // namespace zrelay
