// EventLoop: one readiness poller (epoll, or io_uring: engine/poller.h), run
// by exactly one thread.
//
// Sockets are registered once, edge-triggered, for IN | OUT | RDHUP. The
// loop keeps a readable/writable flag per fd: an event sets it, the owner
// clears it when a syscall returns EAGAIN. Pausing a direction for
// backpressure is then just not reading, with no epoll_ctl: a steady pair
// costs zero epoll_ctl calls after registration.
//
// One turn of the loop:
//   1. wait for readiness (timeout 0 if the ready list or task queue is
//      non-empty, else until the next timer); with io_uring this same kernel
//      entry submits every request queued during the previous turn
//   2. dispatch fd events (flags updated before the handler runs)
//   3. run handlers on the ready list (those that stopped on their budget)
//   4. run posted tasks
//   5. fire expired timers
//   6. destroy objects handed to DeferDelete
// Every method except Post(), Stop() and InLoopThread() is loop-thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/clock.h"
#include "engine/poller.h"
#include "engine/result.h"
#include "engine/syscalls.h"
#include "engine/timer_wheel.h"
#include "engine/unique_fd.h"

namespace zrelay {

class EventLoop;
class FdWatch;

class FdHandler {
 public:
  virtual ~FdHandler() = default;
  // The poller reported `events` (an EPOLL* mask) for `watch`; its flags are
  // already updated. Runs on the loop thread.
  virtual void OnFdEvent(FdWatch& watch, uint32_t events) = 0;
};

// Registration of one fd with one loop. Embed it in the fd's owner; it is not
// movable (the loop's poller maps events to its address). The fd itself is owned elsewhere: call
// Unregister() (or destroy the watch) BEFORE closing the fd.
//
// Lifetime rule: while fd events are being dispatched, a watch may be
// unregistered (its later events in the same batch are then skipped) but its
// memory must stay valid until the turn ends: owners that die from inside a
// callback go through EventLoop::DeferDelete.
class FdWatch {
 public:
  FdWatch() = default;
  ~FdWatch();
  FdWatch(const FdWatch&) = delete;
  FdWatch& operator=(const FdWatch&) = delete;

  // Starts watching `fd` for IN | OUT | RDHUP, edge-triggered.
  Status Register(EventLoop& loop, int fd, FdHandler* handler);
  // Stops watching (epoll: EPOLL_CTL_DEL); a no-op when not registered.
  // Events already fetched in this turn for this watch are dropped.
  void Unregister();
  // Like Unregister() for a caller about to close the fd: epoll forgets a
  // closed fd by itself, which saves an epoll_ctl per socket on the
  // connection path. Safe even when another descriptor keeps the file open
  // (a dup, a child between fork and exec): its later events never reach
  // this watch.
  void UnregisterForClose();
  // Hands the registration to another handler (no syscall): used when a
  // connected socket passes from its connector to its pair.
  void set_handler(FdHandler* handler) { handler_ = handler; }

  bool registered() const { return loop_ != nullptr; }
  EventLoop* loop() const { return loop_; }
  int fd() const { return fd_; }

  // Level state kept across edges. Set by the loop from EPOLLIN / EPOLLOUT;
  // cleared by the owner when read/write returns EAGAIN.
  bool readable() const { return readable_; }
  bool writable() const { return writable_; }
  // EPOLLRDHUP seen: the peer sent FIN (reads will return 0 once drained).
  bool read_hup() const { return read_hup_; }
  // EPOLLERR or EPOLLHUP seen: read SO_ERROR for the cause.
  bool error() const { return error_; }
  void clear_readable() { readable_ = false; }
  void clear_writable() { writable_ = false; }

 private:
  friend class EventLoop;
  friend class EpollPoller;
  friend class UringPoller;
  void Remove(bool fd_closing);
  void Forget();  // back to unregistered, after the poller's Remove
  EventLoop* loop_ = nullptr;
  FdHandler* handler_ = nullptr;
  uintptr_t poller_token_ = 0;  // the poller's handle on this registration
  int fd_ = -1;
  bool readable_ = false;
  bool writable_ = false;
  bool read_hup_ = false;
  bool error_ = false;
};

// A handler that stopped on its fairness budget and wants another turn.
class ReadyHandler {
 public:
  virtual ~ReadyHandler();  // removes itself from the ready list
  // Runs once per turn while scheduled; schedule again to stay on the list.
  virtual void OnReady() = 0;

 private:
  friend class EventLoop;
  EventLoop* ready_loop_ = nullptr;  // non-null while on a ready list
  ReadyHandler* ready_prev_ = nullptr;
  ReadyHandler* ready_next_ = nullptr;
};

// Base for objects whose destruction is deferred to the end of the turn.
class Deferrable {
 public:
  virtual ~Deferrable() = default;
};

struct EventLoopStats {
  uint64_t turns = 0;
  uint64_t fd_events = 0;
  uint64_t ready_runs = 0;
  uint64_t tasks_run = 0;
  uint64_t timers_fired = 0;
};

struct EventLoopOptions {
  IoBackend io = IoBackend::kEpoll;
};

class EventLoop final : private Poller::Sink {
 public:
  // Errors name the backend that could not be set up (io_uring disabled by
  // sysctl or seccomp, a kernel too old; epoll_create1, eventfd).
  static Result<std::unique_ptr<EventLoop>> Create(const EventLoopOptions& options = {});
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs turns until Stop(). Binds the loop to the calling thread.
  void Run();
  // Runs a single turn, waiting at most `max_wait` for events. For tests and
  // embedders that drive the loop themselves.
  void RunOnce(Duration max_wait);
  // Any thread: Run() returns after the current turn.
  void Stop();

  // Any thread: runs `task` on the loop thread in a later turn. Tasks run in
  // the order posted. Wakes the loop through an eventfd.
  void Post(std::function<void()> task);
  // True on the loop's thread, or when no thread runs it (before Run(), and
  // after Run() returned).
  bool InLoopThread() const;

  // Serves `handler` once more on the next turn, after fd events. Idempotent.
  void ScheduleReady(ReadyHandler* handler);
  void UnscheduleReady(ReadyHandler* handler);

  void ArmTimer(Timer& timer, Duration delay) { timers_.Arm(timer, now_, delay); }
  void CancelTimer(Timer& timer) { timers_.Cancel(timer); }

  // Destroys `object` at the end of this turn, so a callback never frees the
  // object it is running in (Envoy's deferredDelete).
  void DeferDelete(std::unique_ptr<Deferrable> object);

  // Tells `watch`'s handler `events` (an EPOLL* mask) as if the poller had
  // reported them, flags included: for an operation the loop's ring
  // completed (a send that finished makes its socket writable again). A
  // watch no longer registered hears nothing.
  void Notify(FdWatch& watch, uint32_t events);
  // Closes `fd`: at once on epoll; on io_uring with the turn's other
  // requests, after every request queued for it before (so a queued send
  // still goes out on this socket, never on a socket that reuses the number),
  // and without a syscall of its own.
  void CloseFd(UniqueFd fd);

  // Time at the start of this turn (cached: one clock read per turn).
  TimePoint now() const { return now_; }
  void UpdateNow() { now_ = Clock::now(); }

  Syscalls& sys() { return *sys_; }
  // Tests: replace the syscall seam (nullptr restores the real one).
  void set_syscalls(Syscalls* sys) { sys_ = sys ? sys : &Syscalls::Real(); }

  const EventLoopStats& stats() const { return stats_; }
  // The backend this loop waits with (never kAuto).
  IoBackend io() const { return poller_->backend(); }
  // The loop's io_uring (kUring only, else null): requests queued on it from
  // the loop thread go to the kernel with the next turn's wait.
  UringRing* uring() { return poller_->uring(); }

 private:
  friend class FdWatch;
  EventLoop(std::unique_ptr<Poller> poller, UniqueFd wake_fd);
  void Turn(Duration max_wait);
  void BindThread();
  void Deliver(FdWatch& watch, uint32_t events) override;
  void RunTasks();
  void RunReadyList();
  void UnlinkReady(ReadyHandler* handler);
  void Wake();

  std::unique_ptr<Poller> poller_;
  UniqueFd wake_fd_;
  FdWatch wake_watch_;
  TimePoint now_;
  bool waited_ = false;  // this turn's wait has returned and now_ is fresh
  TimerWheel timers_;
  Syscalls* sys_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> thread_id_{0};  // hash of the running thread's id; 0 = unbound

  std::mutex tasks_mu_;
  std::vector<std::function<void()>> tasks_;  // guarded by tasks_mu_
  std::atomic<bool> wake_pending_{false};

  ReadyHandler* ready_head_ = nullptr;
  ReadyHandler* ready_tail_ = nullptr;
  // The batch RunReadyList is serving: handlers scheduled meanwhile go on the
  // list above and wait for the next turn.
  ReadyHandler* ready_run_head_ = nullptr;
  ReadyHandler* ready_run_tail_ = nullptr;
  std::vector<std::unique_ptr<Deferrable>> deferred_;
  EventLoopStats stats_;
};

}  // namespace zrelay
