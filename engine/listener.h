// Listener: accepts connections on every worker of a pool.
//
// TCP: one SO_REUSEPORT socket per worker, so the kernel spreads incoming
// connections across workers and the worker that accepted a client runs it.
// Unix sockets have no SO_REUSEPORT balancing: one socket is bound once and
// every worker watches a dup() of it; they race on accept4 and the losers
// just see EAGAIN (FdWatch cannot register with EPOLLEXCLUSIVE, which does
// not combine with EPOLLRDHUP).
//
// Sockets can also be adopted instead of bound (ListenerOptions::adopt_sockets,
// for a reload or an upgrade that must refuse no client): the listener
// dup()s them, so stopping it closes only its own descriptors. A listening
// socket is only torn down when its last holder closes it, and nothing here
// calls shutdown() on it or unlinks a unix socket's path, so another holder
// (a listener of the same engine, another process) keeps accepting from the
// same queue.
//
// accept4 makes non-blocking, close-on-exec sockets. On EMFILE/ENFILE (and
// ENOBUFS/ENOMEM) a worker stops accepting, counts the event, and retries on a
// timer: no busy loop, and the listener survives. An owner that runs out of
// fds later (the backend socket() after an accept) pauses the same way with
// BackOff().
//
// With max_connections, each accepted connection holds a slot until its owner
// calls Release(). A worker takes a slot before it calls accept4, so the
// limit holds exactly across workers; a worker that finds none stops
// accepting (clients wait in the kernel's backlog: nothing is refused or
// reset) until a Release() posts it a task to resume.
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
  // Accepted connections open at once, across workers; 0: no limit. Each
  // holds a slot from accept until its owner calls Listener::Release().
  size_t max_connections = 0;
  // Listening sockets to adopt instead of binding (borrowed: each one used
  // is dup()ed). Those bound to `address` (getsockname) are used, in the
  // order given; the rest are ignored. They are made non-blocking, and
  // listen() runs again with `backlog`.
  // TCP: socket k is watched by worker k % workers, so a worker may watch
  // several (each socket's queue is still drained: none is left
  // unwatched). With fewer sockets than workers the missing ones are bound
  // into the same SO_REUSEPORT group, which works when the adopted sockets
  // have SO_REUSEPORT and belong to the same user (as zrelay's own do).
  // Unix: every worker watches every adopted socket; without one the path
  // is bound as usual.
  std::vector<int> adopt_sockets;
};

struct ListenerStats {
  uint64_t accepted = 0;
  uint64_t fd_exhausted = 0;  // accept4 failed with EMFILE/ENFILE/ENOBUFS/ENOMEM
  uint64_t accept_errors = 0; // any other accept4 failure
  uint64_t paused_max_connections = 0;  // a worker stopped accepting: no slot left
};

class Listener {
 public:
  // Bind() then Accept().
  static Result<std::unique_ptr<Listener>> Start(WorkerPool& pool, const ListenerOptions& options,
                                                 AcceptHandler* handler);
  // Binds on every worker (errors name the address); no handler call yet.
  // For owners whose handler needs the listener (Release, BackOff) from the
  // first accept on: they store it, then call Accept(). `handler` must
  // outlive the listener. Call from a non-worker thread.
  static Result<std::unique_ptr<Listener>> Bind(WorkerPool& pool, const ListenerOptions& options,
                                                AcceptHandler* handler);
  // Starts accepting on every worker; on failure stops. Once, after Bind().
  // Call from a non-worker thread.
  Status Accept();
  ~Listener();  // Stop()
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // The bound address (with the kernel's port when options asked for port 0).
  const Address& local_address() const { return local_address_; }

  // dup()s of the listening sockets, for another listener or process to
  // adopt: one per socket (TCP: one per worker, or more when more were
  // adopted; unix: the one socket the workers share). Empty once stopped.
  // Not concurrently with Stop(). Call from a non-worker thread.
  Result<std::vector<UniqueFd>> ExportSockets() const;

  // Closes the listening sockets on every worker and waits until no worker
  // will call the handler again. Idempotent. Call from a non-worker thread.
  void Stop();

  // Stops accepting on `worker` for options.fd_exhausted_retry, then retries:
  // the pause the listener takes itself when accept4 runs out of fds, for an
  // owner that ran out right after (its backend socket() failed with EMFILE),
  // so a burst of clients is not accepted only to be reset one by one.
  // `worker`'s thread only; a no-op once stopped.
  void BackOff(size_t worker);

  // Gives back the max_connections slot of one accepted connection (a no-op
  // without a limit) and resumes the workers that stopped for want of one.
  // Call exactly once per accepted connection, from any worker thread of the
  // pool (Stop() relies on that to wait out the resume tasks it posts).
  void Release();

  ListenerStats Stats() const;
  ListenerStats Stats(size_t worker) const;

 private:
  class WorkerAcceptor;
  Listener() = default;
  // Takes a max_connections slot for `acceptor`, or marks it waiting and
  // returns false. `acceptor`'s thread.
  bool AcquireSlot(WorkerAcceptor& acceptor);
  bool TakeSlot(std::memory_order order);

  // Each socket's acceptors: TCP, one on worker k % workers for socket k;
  // unix, one per worker (on dup()s).
  Status AddAcceptors(std::vector<UniqueFd> sockets, const ListenerOptions& options,
                      AcceptHandler* handler);

  WorkerPool* pool_ = nullptr;
  Address local_address_;
  // At least one per worker; acceptors_[i] is on worker i % workers.
  std::vector<std::unique_ptr<WorkerAcceptor>> acceptors_;
  size_t max_connections_ = 0;
  std::atomic<size_t> open_{0};             // slots taken
  std::atomic<size_t> waiting_workers_{0};  // workers stopped for want of a slot
  std::atomic<bool> stopping_{false};
};

}  // namespace zrelay
