// Connector: a non-blocking connect with a timeout, driven by the loop.
//
// The result is always reported from the loop, never from inside Start()
// (even an immediate ECONNREFUSED), so callers need no re-entrancy care.
//
// On an epoll loop: connect(2), which returns EINPROGRESS, then the watch's
// first writable or error event and getsockopt(SO_ERROR) for the outcome.
// On an io_uring loop the connect is a request on the loop's ring
// (IORING_OP_CONNECT) and its completion carries the outcome: two system
// calls fewer per connection, and the request goes to the kernel in the
// turn's one io_uring_enter. The watch is registered right after the request
// is queued, and the kernel issues a submission's requests in order, so its
// poll meets a socket already connecting (a socket not yet connecting polls
// as hung up). Its events are not read until the completion came.
#pragma once

#include <optional>

#include "engine/address.h"
#include "engine/clock.h"
#include "engine/event_loop.h"
#include "engine/result.h"
#include "engine/timer_wheel.h"
#include "engine/unique_fd.h"

namespace zrelay {

class ConnectHandler {
 public:
  virtual ~ConnectHandler() = default;
  // On success `fd` is connected and still registered through the watch given
  // to Start(): call watch.set_handler() to take its events. On failure the
  // watch is unregistered and the error says why, naming the address
  // ("connect to 127.0.0.1:9: Connection refused", "... timed out after 2 s",
  // "connect to 127.0.0.1:9: socket: Too many open files").
  virtual void OnConnect(Result<UniqueFd> fd) = 0;
};

class Connector : private FdHandler, private TimerHandler {
 public:
  explicit Connector(EventLoop& loop) : loop_(loop), timer_(this) {}
  ~Connector();  // cancels a connect in progress without calling back
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // Starts connecting to `address`, registering the new socket through
  // `watch` (owned by the caller, which keeps it after success: no epoll_ctl
  // DEL + ADD per backend connection). `handler->OnConnect` runs exactly
  // once, in a later loop callback, unless Cancel() or destruction comes
  // first; Cancel unregisters the watch and closes the socket.
  void Start(const Address& address, Duration timeout, FdWatch& watch, ConnectHandler* handler);
  void Cancel();
  bool in_progress() const { return handler_ != nullptr; }

 private:
  void OnFdEvent(FdWatch& watch, uint32_t events) override;
  void OnTimer(Timer& timer) override;
  void Finish(Result<UniqueFd> result);
  // Gives the socket up (the watch is unregistered already): a connect
  // request still queued or in flight is cancelled, and the fd closes
  // through the loop after it, so the request never names a socket that
  // took the number meanwhile.
  void DropSocket();

  class RingConnect;
  void OnRingConnect(int res);
  // The connect ended: `err` is 0 or an errno.
  void Completed(int err);

  EventLoop& loop_;
  Timer timer_;
  FdWatch* watch_ = nullptr;
  UniqueFd fd_;
  Address address_;
  Duration timeout_{};
  ConnectHandler* handler_ = nullptr;
  // A failure seen inside Start(); reported when timer_ fires right after,
  // so the callback still comes from the loop (and Cancel stops it).
  std::optional<Error> immediate_error_;
  RingConnect* ring_connect_ = nullptr;  // io_uring: the connect request in flight
};

}  // namespace zrelay
