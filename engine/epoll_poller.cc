#include "engine/epoll_poller.h"

#include <cerrno>
#include <climits>
#include <cstring>
#include <string>

#include "engine/check.h"
#include "engine/event_loop.h"

namespace zrelay {
namespace {

constexpr uint32_t kWatchEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr size_t kInitialEvents = 256;
constexpr size_t kMaxEvents = 4096;

// epoll_wait's timeout: `d` rounded UP to whole milliseconds, so a timer is
// never woken for before its tick has ended (which would cost a spin).
int TimeoutMs(Duration d) {
  if (d == Duration::max()) return -1;
  if (d <= Duration::zero()) return 0;
  if (d >= milliseconds(INT_MAX)) return INT_MAX;
  return static_cast<int>(std::chrono::ceil<milliseconds>(d).count());
}

uint64_t Key(uint32_t index, uint32_t generation) {
  return (static_cast<uint64_t>(generation) << 32) | index;
}

}  // namespace

Result<std::unique_ptr<Poller>> EpollPoller::Create() {
  UniqueFd epoll_fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd) return Error::FromErrno(errno, "epoll_create1");
  return std::unique_ptr<Poller>(new EpollPoller(std::move(epoll_fd)));
}

EpollPoller::EpollPoller(UniqueFd epoll_fd)
    : epoll_fd_(std::move(epoll_fd)), events_(kInitialEvents) {}

Status EpollPoller::Add(FdWatch& watch) {
  uint32_t index;
  if (!free_slots_.empty()) {
    index = free_slots_.back();
    free_slots_.pop_back();
  } else {
    index = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& slot = slots_[index];
  struct epoll_event ev {};
  ev.events = kWatchEvents;
  ev.data.u64 = Key(index, slot.generation);
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, watch.fd(), &ev) != 0) {
    free_slots_.push_back(index);
    return Error::FromErrno(errno, "epoll_ctl ADD fd " + std::to_string(watch.fd()));
  }
  slot.watch = &watch;
  watch.poller_token_ = index;
  return Status::Ok();
}

void EpollPoller::Remove(FdWatch& watch, bool fd_closing) {
  // EBADF/ENOENT: the fd was closed (or never added) already; nothing to undo.
  if (!fd_closing) (void)::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, watch.fd(), nullptr);
  const auto index = static_cast<uint32_t>(watch.poller_token_);
  Slot& slot = slots_[index];
  ZR_CHECK(slot.watch == &watch, "epoll slot %u does not hold the watch removed", index);
  slot.watch = nullptr;
  ++slot.generation;  // events still queued, or from a file kept open elsewhere, miss
  free_slots_.push_back(index);
}

void EpollPoller::Wait(Duration max_wait, Sink& sink) {
  int n = ::epoll_wait(epoll_fd_.get(), events_.data(), static_cast<int>(events_.size()),
                       TimeoutMs(max_wait));
  if (n < 0) {
    // EINTR (a signal, a debugger): just a short turn. Anything else (EBADF,
    // EFAULT, EINVAL) means a broken epoll fd or event array, a bug that
    // would repeat on every turn: a loop spinning on it would serve nothing.
    const int err = errno;
    ZR_CHECK(err == EINTR, "epoll_wait on epoll fd %d: %s", epoll_fd_.get(), std::strerror(err));
    return;
  }
  for (int i = 0; i < n; ++i) {
    const uint64_t key = events_[i].data.u64;
    const Slot& slot = slots_[static_cast<uint32_t>(key)];
    // Removed by an earlier delivery of this batch, or before it was fetched.
    if (slot.watch == nullptr || slot.generation != static_cast<uint32_t>(key >> 32)) continue;
    sink.Deliver(*slot.watch, events_[i].events);
  }
  if (static_cast<size_t>(n) == events_.size() && events_.size() < kMaxEvents) {
    events_.resize(events_.size() * 2);  // a full batch: fetch more next time
  }
}

}  // namespace zrelay
