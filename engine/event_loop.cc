#include "engine/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "engine/check.h"
#include "engine/uring_ring.h"

namespace zrelay {
namespace {

uint64_t ThisThreadId() {
  uint64_t id = std::hash<std::thread::id>{}(std::this_thread::get_id());
  return id != 0 ? id : 1;  // 0 means "unbound"
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
  // An io_uring poll is an SQE on the loop's single-issuer ring: only the
  // loop's thread may queue it (epoll_ctl works from any thread).
  ZR_CHECK(loop.io() != IoBackend::kUring || loop.InLoopThread(),
           "FdWatch::Register of fd %d off its io_uring loop's thread", fd);
  fd_ = fd;
  Status added = loop.poller_->Add(*this);
  if (!added) {
    fd_ = -1;
    return added;
  }
  loop_ = &loop;
  handler_ = handler;
  readable_ = writable_ = read_hup_ = error_ = false;
  return Status::Ok();
}

void FdWatch::Unregister() { Remove(/*fd_closing=*/false); }

void FdWatch::UnregisterForClose() { Remove(/*fd_closing=*/true); }

void FdWatch::Remove(bool fd_closing) {
  if (loop_ == nullptr) return;
  ZR_CHECK(loop_->io() != IoBackend::kUring || loop_->InLoopThread(),
           "FdWatch of fd %d removed off its io_uring loop's thread", fd_);
  loop_->poller_->Remove(*this, fd_closing);
  Forget();
}

void FdWatch::Forget() {
  // Events already fetched for this watch in the current batch are skipped:
  // the poller stops delivering them once Remove() returns.
  loop_ = nullptr;
  fd_ = -1;
  poller_token_ = 0;
  readable_ = writable_ = read_hup_ = error_ = false;
}

// ---- ReadyHandler ----------------------------------------------------------

ReadyHandler::~ReadyHandler() {
  if (ready_loop_ != nullptr) ready_loop_->UnscheduleReady(this);
}

// ---- EventLoop -------------------------------------------------------------

Result<std::unique_ptr<EventLoop>> EventLoop::Create(const EventLoopOptions& options) {
  Result<std::unique_ptr<Poller>> poller = Poller::Create(options.io);
  if (!poller.ok()) return poller.error();
  UniqueFd wake_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_fd) return Error::FromErrno(errno, "eventfd");
  std::unique_ptr<EventLoop> loop(new EventLoop(std::move(poller.value()), std::move(wake_fd)));
  // The wake watch has no handler: Dispatch recognises it and drains it.
  Status s = loop->wake_watch_.Register(*loop, loop->wake_fd_.get(), nullptr);
  if (!s) return s.error();
  return loop;
}

EventLoop::EventLoop(std::unique_ptr<Poller> poller, UniqueFd wake_fd)
    : poller_(std::move(poller)),
      wake_fd_(std::move(wake_fd)),
      now_(Clock::now()),
      timers_(now_),
      sys_(&Syscalls::Real()) {}

EventLoop::~EventLoop() {
  // Often run by another thread than the loop's (a pool destroys its loops
  // after joining them): no poller call here. The poller goes next and takes
  // its registrations with it.
  wake_watch_.Forget();
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
  // Stopped: no thread runs the loop now, so its owner may tear things down
  // from any thread (WorkerPool::RunOnEach after Stop()).
  thread_id_.store(0, std::memory_order_relaxed);
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
  Duration wait = Duration::zero();
  if (ready_head_ == nullptr && !wake_pending_.load(std::memory_order_relaxed) &&
      !stop_.load(std::memory_order_relaxed)) {
    wait = std::max(max_wait, Duration::zero());
    if (std::optional<Duration> next = timers_.NextTimeout(Clock::now())) {
      wait = std::min(wait, *next);
    }
  }
  // Delivery needs the turn's time (handlers arm timers against it): the
  // poller calls Deliver only after the wait, so refresh it first there.
  waited_ = false;
  poller_->Wait(wait, *this);
  if (!waited_) UpdateNow();

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

void EventLoop::Notify(FdWatch& watch, uint32_t events) {
  ZR_CHECK(InLoopThread(), "Notify from another thread than the loop's");
  if (watch.loop_ == this) Deliver(watch, events);
}

// ThreadSanitizer watches close(2) to know that an fd number is free again;
// a close the kernel runs for the ring is invisible to it, and the next
// socket to get the number (made on any thread) would look like a race with
// the old one. Its builds submit what is queued and close(2) here.
#if defined(__SANITIZE_THREAD__)
constexpr bool kCloseThroughRing = false;
#else
constexpr bool kCloseThroughRing = true;
#endif

void EventLoop::CloseFd(UniqueFd fd) {
  if (!fd) return;
  UringRing* ring = uring();
  if (ring == nullptr) return;  // epoll: `fd` closes here, as it goes out of scope
  if (kCloseThroughRing) {
    ring->CloseDetached(fd.Release());
  } else {
    ring->SubmitQueued();  // then `fd` closes as it goes out of scope
  }
}

void EventLoop::Deliver(FdWatch& watch, uint32_t ev) {
  if (!waited_) {
    waited_ = true;
    UpdateNow();
  }
  if (&watch == &wake_watch_) {
    uint64_t value;
    while (::read(wake_fd_.get(), &value, sizeof(value)) < 0 && errno == EINTR) {
    }
    return;
  }
  if (watch.loop_ != this) return;  // unregistered by an earlier handler of this batch
  if (ev & EPOLLIN) watch.readable_ = true;
  if (ev & EPOLLOUT) watch.writable_ = true;
  if (ev & EPOLLRDHUP) {
    watch.read_hup_ = true;
    watch.readable_ = true;
  }
  if (ev & (EPOLLERR | EPOLLHUP)) {
    // Let the owner try both directions and learn the error from the call.
    watch.error_ = true;
    watch.readable_ = true;
    watch.writable_ = true;
  }
  ++stats_.fd_events;
  watch.handler_->OnFdEvent(watch, ev);
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
