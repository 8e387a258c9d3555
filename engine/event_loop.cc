#include "engine/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "engine/check.h"

namespace zrelay {
namespace {

constexpr uint32_t kWatchEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr size_t kInitialEvents = 256;
constexpr size_t kMaxEvents = 4096;

uint64_t ThisThreadId() {
  uint64_t id = std::hash<std::thread::id>{}(std::this_thread::get_id());
  return id != 0 ? id : 1;  // 0 means "unbound"
}

// epoll_wait's timeout: `d` rounded UP to whole milliseconds, so a timer is
// never woken for before its tick has ended (which would cost a spin).
int TimeoutMs(Duration d) {
  if (d <= Duration::zero()) return 0;
  if (d >= milliseconds(INT_MAX)) return INT_MAX;
  auto ms = std::chrono::ceil<milliseconds>(d).count();
  return static_cast<int>(ms);
}

}  // namespace

// ---- FdWatch ---------------------------------------------------------------

FdWatch::~FdWatch() { Unregister(); }

Status FdWatch::Register(EventLoop& loop, int fd, FdHandler* handler) {
  if (loop_ != nullptr) {
    return Error(std::make_error_code(std::errc::device_or_resource_busy),
                 "register fd " + std::to_string(fd) + ": watch already registered for fd " +
                     std::to_string(fd_));
  }
  struct epoll_event ev {};
  ev.events = kWatchEvents;
  ev.data.ptr = this;
  if (::epoll_ctl(loop.epoll_fd(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return Error::FromErrno(errno, "epoll_ctl ADD fd " + std::to_string(fd));
  }
  loop_ = &loop;
  handler_ = handler;
  fd_ = fd;
  readable_ = writable_ = read_hup_ = error_ = false;
  return Status::Ok();
}

void FdWatch::Unregister() {
  if (loop_ == nullptr) return;
  // EBADF/ENOENT: the fd was closed (or never added) already; nothing to undo.
  (void)::epoll_ctl(loop_->epoll_fd(), EPOLL_CTL_DEL, fd_, nullptr);
  UnregisterForClose();
}

void FdWatch::UnregisterForClose() {
  // Events already fetched for this watch in the current batch are skipped:
  // the loop checks loop_ before dispatching.
  loop_ = nullptr;
  fd_ = -1;
  readable_ = writable_ = read_hup_ = error_ = false;
}

// ---- ReadyHandler ----------------------------------------------------------

ReadyHandler::~ReadyHandler() {
  if (ready_loop_ != nullptr) ready_loop_->UnscheduleReady(this);
}

// ---- EventLoop -------------------------------------------------------------

Result<std::unique_ptr<EventLoop>> EventLoop::Create() {
  UniqueFd epoll_fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd) return Error::FromErrno(errno, "epoll_create1");
  UniqueFd wake_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_fd) return Error::FromErrno(errno, "eventfd");
  std::unique_ptr<EventLoop> loop(new EventLoop(std::move(epoll_fd), std::move(wake_fd)));
  // The wake watch has no handler: Dispatch recognises it and drains it.
  Status s = loop->wake_watch_.Register(*loop, loop->wake_fd_.get(), nullptr);
  if (!s) return s.error();
  return loop;
}

EventLoop::EventLoop(UniqueFd epoll_fd, UniqueFd wake_fd)
    : epoll_fd_(std::move(epoll_fd)),
      wake_fd_(std::move(wake_fd)),
      now_(Clock::now()),
      timers_(now_),
      sys_(&Syscalls::Real()),
      events_(kInitialEvents) {}

EventLoop::~EventLoop() {
  wake_watch_.Unregister();
  // Objects handed over for deletion die now; handlers still on the ready
  // list simply stop being scheduled.
  while (!deferred_.empty()) {
    auto batch = std::move(deferred_);
    deferred_.clear();
    batch.clear();
  }
  for (ReadyHandler* list : {ready_head_, ready_run_head_}) {
    while (list != nullptr) {
      ReadyHandler* next = list->ready_next_;
      list->ready_loop_ = nullptr;
      list->ready_prev_ = list->ready_next_ = nullptr;
      list = next;
    }
  }
}

void EventLoop::BindThread() { thread_id_.store(ThisThreadId(), std::memory_order_relaxed); }

bool EventLoop::InLoopThread() const {
  uint64_t id = thread_id_.load(std::memory_order_relaxed);
  return id == 0 || id == ThisThreadId();
}

void EventLoop::Run() {
  BindThread();
  // Stop() before Run() still ends Run() after one turn; the flag is reset so
  // the loop can be run again.
  do {
    Turn(Duration::max());
  } while (!stop_.exchange(false));
}

void EventLoop::RunOnce(Duration max_wait) {
  BindThread();
  Turn(max_wait);
}

void EventLoop::Stop() {
  stop_.store(true);
  Wake();
}

void EventLoop::Wake() {
  // Coalesced: one eventfd write per batch of posts; RunTasks re-arms it.
  if (wake_pending_.exchange(true)) return;
  uint64_t one = 1;
  ssize_t rc;
  do {
    rc = ::write(wake_fd_.get(), &one, sizeof(one));
  } while (rc < 0 && errno == EINTR);
  // EAGAIN means the counter is saturated: the loop is awake anyway.
}

void EventLoop::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(tasks_mu_);
    tasks_.push_back(std::move(task));
  }
  Wake();
}

void EventLoop::ScheduleReady(ReadyHandler* handler) {
  ZR_CHECK(InLoopThread(), "ScheduleReady from another thread than the loop's");
  if (handler->ready_loop_ != nullptr) return;
  handler->ready_loop_ = this;
  handler->ready_next_ = nullptr;
  handler->ready_prev_ = ready_tail_;
  if (ready_tail_ != nullptr) {
    ready_tail_->ready_next_ = handler;
  } else {
    ready_head_ = handler;
  }
  ready_tail_ = handler;
}

void EventLoop::UnscheduleReady(ReadyHandler* handler) {
  if (handler->ready_loop_ != this) return;
  UnlinkReady(handler);
}

void EventLoop::UnlinkReady(ReadyHandler* h) {
  // `h` is on the pending list or on the batch being served.
  if (h->ready_prev_ != nullptr) {
    h->ready_prev_->ready_next_ = h->ready_next_;
  } else if (ready_head_ == h) {
    ready_head_ = h->ready_next_;
  } else {
    ZR_CHECK(ready_run_head_ == h, "a ready handler linked to neither list");
    ready_run_head_ = h->ready_next_;
  }
  if (h->ready_next_ != nullptr) {
    h->ready_next_->ready_prev_ = h->ready_prev_;
  } else if (ready_tail_ == h) {
    ready_tail_ = h->ready_prev_;
  } else {
    ZR_CHECK(ready_run_tail_ == h, "a ready handler linked to neither list");
    ready_run_tail_ = h->ready_prev_;
  }
  h->ready_loop_ = nullptr;
  h->ready_prev_ = h->ready_next_ = nullptr;
}

void EventLoop::DeferDelete(std::unique_ptr<Deferrable> object) {
  ZR_CHECK(InLoopThread(), "DeferDelete from another thread than the loop's");
  deferred_.push_back(std::move(object));
}

void EventLoop::Turn(Duration max_wait) {
  ++stats_.turns;
  int timeout_ms = 0;
  if (ready_head_ == nullptr && !wake_pending_.load(std::memory_order_relaxed) &&
      !stop_.load(std::memory_order_relaxed)) {
    Duration wait = std::max(max_wait, Duration::zero());
    if (std::optional<Duration> next = timers_.NextTimeout(Clock::now())) {
      wait = std::min(wait, *next);
    }
    timeout_ms = wait == Duration::max() ? -1 : TimeoutMs(wait);
  }

  int n = ::epoll_wait(epoll_fd_.get(), events_.data(), static_cast<int>(events_.size()),
                       timeout_ms);
  if (n < 0) {
    // EINTR (a signal, a debugger): just a short turn. Anything else (EBADF,
    // EFAULT, EINVAL) means a broken epoll fd or event array, a bug that
    // would repeat on every turn: a loop spinning on it would serve nothing.
    const int err = errno;
    ZR_CHECK(err == EINTR, "epoll_wait on epoll fd %d: %s", epoll_fd_.get(), std::strerror(err));
    n = 0;
  }
  UpdateNow();
  Dispatch(n);
  if (static_cast<size_t>(n) == events_.size() && events_.size() < kMaxEvents) {
    events_.resize(events_.size() * 2);  // a full batch: fetch more next time
  }

  RunReadyList();
  RunTasks();
  const uint64_t fired_before = timers_.fired_count();
  timers_.Advance(now_);
  stats_.timers_fired += timers_.fired_count() - fired_before;

  while (!deferred_.empty()) {
    // Destructors may hand over more objects; they die in this turn too.
    auto batch = std::move(deferred_);
    deferred_.clear();
    batch.clear();
  }
}

void EventLoop::Dispatch(int count) {
  for (int i = 0; i < count; ++i) {
    const uint32_t ev = events_[i].events;
    auto* watch = static_cast<FdWatch*>(events_[i].data.ptr);
    if (watch == &wake_watch_) {
      uint64_t value;
      while (::read(wake_fd_.get(), &value, sizeof(value)) < 0 && errno == EINTR) {
      }
      continue;
    }
    // Unregistered by an earlier handler of this batch: drop its events.
    if (watch->loop_ != this) continue;
    if (ev & EPOLLIN) watch->readable_ = true;
    if (ev & EPOLLOUT) watch->writable_ = true;
    if (ev & EPOLLRDHUP) {
      watch->read_hup_ = true;
      watch->readable_ = true;
    }
    if (ev & (EPOLLERR | EPOLLHUP)) {
      // Let the owner try both directions and learn the error from the call.
      watch->error_ = true;
      watch->readable_ = true;
      watch->writable_ = true;
    }
    ++stats_.fd_events;
    watch->handler_->OnFdEvent(*watch, ev);
  }
}

void EventLoop::RunReadyList() {
  if (ready_head_ == nullptr) return;
  // Serve a snapshot: a handler that schedules itself again runs next turn,
  // after the next epoll_wait, so it cannot starve fd events.
  ready_run_head_ = ready_head_;
  ready_run_tail_ = ready_tail_;
  ready_head_ = ready_tail_ = nullptr;
  while (ready_run_head_ != nullptr) {
    ReadyHandler* h = ready_run_head_;
    UnlinkReady(h);
    ++stats_.ready_runs;
    h->OnReady();
  }
}

void EventLoop::RunTasks() {
  // Clear before taking the batch: a Post that lands after the swap must
  // write the eventfd again, or its task would wait for an unrelated event.
  wake_pending_.store(false);
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(tasks_mu_);
    batch.swap(tasks_);
  }
  for (auto& task : batch) {
    ++stats_.tasks_run;
    task();
  }
}

}  // namespace zrelay
