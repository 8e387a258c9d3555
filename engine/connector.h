// Connector: a non-blocking connect with a timeout, driven by the loop.
//
// The result is always reported from the loop, never from inside Start()
// (even an immediate ECONNREFUSED), so callers need no re-entrancy care.
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
};

}  // namespace zrelay
