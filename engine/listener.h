// Listener: accepts connections on every worker of a pool.
//
// TCP: one SO_REUSEPORT socket per worker, so the kernel spreads incoming
// connections across workers and the worker that accepted a client runs it.
// Unix sockets have no SO_REUSEPORT balancing: one socket is bound once and
// every worker watches a dup() of it; they race on accept4 and the losers
// just see EAGAIN (FdWatch cannot register with EPOLLEXCLUSIVE, which does
// not combine with EPOLLRDHUP).
//
// accept4 makes non-blocking, close-on-exec sockets. On EMFILE/ENFILE (and
// ENOBUFS/ENOMEM) a worker stops accepting, counts the event, and retries on a
// timer: no busy loop, and the listener survives.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "engine/address.h"
#include "engine/clock.h"
#include "engine/result.h"
#include "engine/socket.h"
#include "engine/unique_fd.h"
#include "engine/worker_pool.h"

namespace zrelay {

class AcceptHandler {
 public:
  virtual ~AcceptHandler() = default;
  // A new connection accepted on `worker`'s thread. The handler owns `fd`.
  virtual void OnAccept(size_t worker, UniqueFd fd, const Address& peer) = 0;
};

struct ListenerOptions {
  Address address;
  int backlog = 1024;
  // How long a worker pauses accepting after running out of fds.
  Duration fd_exhausted_retry = milliseconds(100);
  // Accepts per readiness event before yielding to other work (fairness).
  int accepts_per_event = 64;
  // TCP_NODELAY on the listening sockets: Linux copies it into every
  // accepted socket, one setsockopt per listener instead of per connection.
  // (No-op for unix sockets.)
  bool tcp_nodelay = false;
};

struct ListenerStats {
  uint64_t accepted = 0;
  uint64_t fd_exhausted = 0;  // accept4 failed with EMFILE/ENFILE/ENOBUFS/ENOMEM
  uint64_t accept_errors = 0; // any other accept4 failure
};

class Listener {
 public:
  // Binds on every worker (errors name the address) and starts accepting.
  // `handler` must outlive the listener. Call from a non-worker thread.
  static Result<std::unique_ptr<Listener>> Start(WorkerPool& pool, const ListenerOptions& options,
                                                 AcceptHandler* handler);
  ~Listener();  // Stop()
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // The bound address (with the kernel's port when options asked for port 0).
  const Address& local_address() const { return local_address_; }

  // Closes the listening sockets on every worker and waits until no worker
  // will call the handler again. Idempotent. Call from a non-worker thread.
  void Stop();

  ListenerStats Stats() const;

 private:
  class WorkerAcceptor;
  Listener() = default;
  WorkerPool* pool_ = nullptr;
  Address local_address_;
  std::vector<std::unique_ptr<WorkerAcceptor>> acceptors_;  // one per worker
};

}  // namespace zrelay
