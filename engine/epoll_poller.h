// EpollPoller: readiness through one epoll instance (see poller.h).
//
// An event names its watch by a slot of this poller's table (index and
// generation in epoll_data), never by the watch's address. A closed fd
// stays in the epoll set while another descriptor shares its file (a dup, a
// child between fork and exec), and its events keep coming after the watch
// is gone: the slot's generation has moved on by then, so they are dropped
// instead of reaching freed memory. That is what lets Remove(fd_closing)
// skip EPOLL_CTL_DEL safely.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <vector>

#include "engine/poller.h"
#include "engine/unique_fd.h"

namespace zrelay {

class EpollPoller final : public Poller {
 public:
  static Result<std::unique_ptr<Poller>> Create();

  IoBackend backend() const override { return IoBackend::kEpoll; }
  Status Add(FdWatch& watch) override;
  void Remove(FdWatch& watch, bool fd_closing) override;
  void Wait(Duration max_wait, Sink& sink) override;

  int epoll_fd() const { return epoll_fd_.get(); }

 private:
  explicit EpollPoller(UniqueFd epoll_fd);

  struct Slot {
    FdWatch* watch = nullptr;  // null while free
    uint32_t generation = 0;   // bumped when the slot is freed
  };

  UniqueFd epoll_fd_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<struct epoll_event> events_;
};

}  // namespace zrelay
