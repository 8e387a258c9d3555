#include "engine/listener.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

namespace zrelay {

// Accepts on one worker. Created by Start(), registered and driven only on
// its worker's thread; Stop() tears it down there too.
class Listener::WorkerAcceptor : public FdHandler, public TimerHandler, public ReadyHandler {
 public:
  WorkerAcceptor(size_t worker, EventLoop& loop, UniqueFd fd, const ListenerOptions& options,
                 AcceptHandler* handler)
      : worker_(worker),
        loop_(loop),
        fd_(std::move(fd)),
        retry_(options.fd_exhausted_retry),
        budget_(options.accepts_per_event > 0 ? options.accepts_per_event : 1),
        handler_(handler),
        timer_(this) {}

  // Worker thread.
  Status Register() { return watch_.Register(loop_, fd_.get(), this); }

  // Worker thread (or any thread once the pool has stopped).
  void Shutdown() {
    watch_.Unregister();
    loop_.CancelTimer(timer_);
    loop_.UnscheduleReady(this);
    fd_.Reset();
    stopped_ = true;
  }
  bool stopped() const { return stopped_; }

  void AddStats(ListenerStats& stats) const {
    stats.accepted += accepted_.load(std::memory_order_relaxed);
    stats.fd_exhausted += fd_exhausted_.load(std::memory_order_relaxed);
    stats.accept_errors += accept_errors_.load(std::memory_order_relaxed);
  }

 private:
  void OnFdEvent(FdWatch&, uint32_t) override {
    if (!paused_) AcceptSome();
  }
  void OnReady() override {
    if (!paused_) AcceptSome();
  }
  void OnTimer(Timer&) override {
    // Retry after fd exhaustion. The readable flag was left set (connections
    // are still queued), so this tries accept4 right away.
    paused_ = false;
    AcceptSome();
  }

  // accept4 until EAGAIN or the budget is spent (then continue next turn).
  void AcceptSome() {
    for (int i = 0; i < budget_; ++i) {
      if (!watch_.registered() || !watch_.readable()) return;
      struct sockaddr_storage ss {};
      socklen_t len = sizeof(ss);
      int fd = ::accept4(fd_.get(), reinterpret_cast<struct sockaddr*>(&ss), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        accepted_.fetch_add(1, std::memory_order_relaxed);
        handler_->OnAccept(worker_, UniqueFd(fd), Address(reinterpret_cast<struct sockaddr*>(&ss), len));
        continue;
      }
      const int err = errno;
      switch (err) {
        case EAGAIN:
          watch_.clear_readable();
          return;
        case EINTR:
          continue;
        // The connection died in the queue, or a per-connection failure that
        // accept(2) says to treat like EAGAIN and retry: skip it.
        case ECONNABORTED:
        case EPROTO:
        case EPERM:
        case ENETDOWN:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETUNREACH:
          accept_errors_.fetch_add(1, std::memory_order_relaxed);
          continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
          // Level-triggered retrying would spin: the queue stays non-empty
          // while no fd is free. Pause and retry on a timer instead.
          fd_exhausted_.fetch_add(1, std::memory_order_relaxed);
          Pause();
          return;
        default:
          // Unexpected (EBADF, EINVAL...): count it and back off the same
          // way rather than spin on an error that will repeat.
          accept_errors_.fetch_add(1, std::memory_order_relaxed);
          Pause();
          return;
      }
    }
    loop_.ScheduleReady(this);  // budget spent, maybe more queued: next turn
  }

  void Pause() {
    paused_ = true;
    loop_.UnscheduleReady(this);
    loop_.ArmTimer(timer_, retry_);
  }

  const size_t worker_;
  EventLoop& loop_;
  UniqueFd fd_;
  const Duration retry_;
  const int budget_;
  AcceptHandler* const handler_;
  FdWatch watch_;
  Timer timer_;
  bool paused_ = false;
  bool stopped_ = false;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> fd_exhausted_{0};
  std::atomic<uint64_t> accept_errors_{0};
};

Result<std::unique_ptr<Listener>> Listener::Start(WorkerPool& pool, const ListenerOptions& options,
                                                  AcceptHandler* handler) {
  std::unique_ptr<Listener> listener(new Listener());
  listener->pool_ = &pool;
  ListenSocketOptions socket_options;
  socket_options.backlog = options.backlog;
  socket_options.reuse_port = true;

  // Worker 0's socket settles the address (the kernel's port for port 0);
  // the others bind that exact address. Unix sockets are bound once and
  // shared through dup(): every worker races on accept4, losers get EAGAIN.
  std::vector<UniqueFd> fds;
  for (size_t i = 0; i < pool.size(); ++i) {
    if (i > 0 && options.address.is_unix()) {
      UniqueFd dup(::fcntl(fds[0].get(), F_DUPFD_CLOEXEC, 0));
      if (!dup) return Error::FromErrno(errno, "listen on " + options.address.ToString() + ": dup");
      fds.push_back(std::move(dup));
      continue;
    }
    const Address& address = i == 0 ? options.address : listener->local_address_;
    Result<UniqueFd> fd = ListenOn(address, socket_options);
    if (!fd) return fd.error();
    if (options.tcp_nodelay) {
      if (Status st = SetNoDelay(fd->get()); !st) return st.error();
    }
    if (i == 0) {
      if (options.address.is_unix()) {
        listener->local_address_ = options.address;
      } else {
        Result<Address> bound = LocalAddress(fd->get());
        if (!bound) return bound.error();
        listener->local_address_ = *bound;
      }
    }
    fds.push_back(std::move(fd).value());
  }

  for (size_t i = 0; i < pool.size(); ++i) {
    listener->acceptors_.push_back(
        std::make_unique<WorkerAcceptor>(i, pool.loop(i), std::move(fds[i]), options, handler));
  }
  std::vector<Status> registered(pool.size());
  pool.RunOnEach([&](size_t worker) { registered[worker] = listener->acceptors_[worker]->Register(); });
  for (const Status& s : registered) {
    if (!s) {
      listener->Stop();
      return Error(s.error().code(),
                   "listen on " + options.address.ToString() + ": " + s.error().message());
    }
  }
  return listener;
}

Listener::~Listener() { Stop(); }

void Listener::Stop() {
  if (acceptors_.empty() || acceptors_[0]->stopped()) return;
  // On each worker's own thread: once RunOnEach returns, no acceptor can be
  // inside or about to enter a handler call.
  pool_->RunOnEach([this](size_t worker) { acceptors_[worker]->Shutdown(); });
}

ListenerStats Listener::Stats() const {
  ListenerStats stats;
  for (const auto& acceptor : acceptors_) acceptor->AddStats(stats);
  return stats;
}

}  // namespace zrelay
