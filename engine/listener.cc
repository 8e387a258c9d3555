#include "engine/listener.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "engine/check.h"

namespace zrelay {

// Accepts on one worker. Created by Bind(), registered and driven only on
// its worker's thread; Stop() tears it down there too.
class Listener::WorkerAcceptor : public FdHandler, public TimerHandler, public ReadyHandler {
 public:
  WorkerAcceptor(Listener& owner, size_t worker, EventLoop& loop, UniqueFd fd,
                 const ListenerOptions& options, AcceptHandler* handler, bool exported)
      : owner_(owner),
        worker_(worker),
        loop_(loop),
        fd_(std::move(fd)),
        retry_(options.fd_exhausted_retry),
        budget_(options.accepts_per_event > 0 ? options.accepts_per_event : 1),
        handler_(handler),
        exported_(exported),
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
  // Whether ExportSockets hands out this acceptor's socket: the first of
  // the dup()s of a shared unix socket, every TCP one.
  bool exported() const { return exported_; }
  int fd() const { return fd_.get(); }

  void AddStats(ListenerStats& stats) const {
    stats.accepted += accepted_.load(std::memory_order_relaxed);
    stats.fd_exhausted += fd_exhausted_.load(std::memory_order_relaxed);
    stats.accept_errors += accept_errors_.load(std::memory_order_relaxed);
    stats.paused_max_connections += paused_max_connections_.load(std::memory_order_relaxed);
  }

  // Worker thread: the timed pause after fd exhaustion (at accept4, or the
  // owner's own through Listener::BackOff).
  void BackOff() {
    if (stopped_) return;
    paused_ |= kBackingOff;
    loop_.UnscheduleReady(this);
    loop_.ArmTimer(timer_, retry_);
  }

  // Worker thread: no max_connections slot was left. Release() posts
  // ResumeForSlot once one is given back.
  void PauseForSlot() {
    paused_ |= kWaitingForSlot;
    paused_max_connections_.fetch_add(1, std::memory_order_relaxed);
    loop_.UnscheduleReady(this);
  }
  void ResumeForSlot() {
    paused_ &= ~kWaitingForSlot;
    AcceptSome();  // takes a slot again first: another worker may have won it
  }

  // Set by AcquireSlot when this worker waits for a slot, taken back by the
  // Release() that posts its resume (so only one resume is posted).
  std::atomic<bool> waiting_for_slot{false};

 private:
  // Why accepting is paused (any set bit pauses it).
  static constexpr unsigned kBackingOff = 1;      // fds ran out: timer_ resumes
  static constexpr unsigned kWaitingForSlot = 2;  // max_connections reached

  void OnFdEvent(FdWatch&, uint32_t) override { AcceptSome(); }
  void OnReady() override { AcceptSome(); }
  void OnTimer(Timer&) override {
    // Retry after fd exhaustion. The readable flag was left set (connections
    // are still queued), so this tries accept4 right away.
    paused_ &= ~kBackingOff;
    AcceptSome();
  }

  // accept4 until EAGAIN or the budget is spent (then continue next turn).
  void AcceptSome() {
    for (int i = 0; i < budget_; ++i) {
      if (paused_ != 0 || !watch_.registered() || !watch_.readable()) return;
      // The slot is taken before accept4 so two workers cannot both take
      // the last one; it goes back below when accept4 gives no connection.
      if (!owner_.AcquireSlot(*this)) return;
      struct sockaddr_storage ss {};
      socklen_t len = sizeof(ss);
      int fd = ::accept4(fd_.get(), reinterpret_cast<struct sockaddr*>(&ss), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        accepted_.fetch_add(1, std::memory_order_relaxed);
        handler_->OnAccept(worker_, UniqueFd(fd),
                           Address(reinterpret_cast<struct sockaddr*>(&ss), len));
        continue;
      }
      const int err = errno;
      owner_.Release();
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
          BackOff();
          return;
        default:
          // Unexpected (EBADF, EINVAL...): count it and back off the same
          // way rather than spin on an error that will repeat.
          accept_errors_.fetch_add(1, std::memory_order_relaxed);
          BackOff();
          return;
      }
    }
    loop_.ScheduleReady(this);  // budget spent, maybe more queued: next turn
  }

  Listener& owner_;
  const size_t worker_;
  EventLoop& loop_;
  UniqueFd fd_;
  const Duration retry_;
  const int budget_;
  AcceptHandler* const handler_;
  const bool exported_;
  FdWatch watch_;
  Timer timer_;
  unsigned paused_ = 0;  // kBackingOff | kWaitingForSlot
  bool stopped_ = false;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> fd_exhausted_{0};
  std::atomic<uint64_t> accept_errors_{0};
  std::atomic<uint64_t> paused_max_connections_{0};
};

Result<std::unique_ptr<Listener>> Listener::Start(WorkerPool& pool, const ListenerOptions& options,
                                                  AcceptHandler* handler) {
  Result<std::unique_ptr<Listener>> listener = Bind(pool, options, handler);
  if (!listener) return listener;
  if (Status st = (*listener)->Accept(); !st) return st.error();
  return listener;
}

namespace {

// The sockets of `options.adopt_sockets` bound to options.address, dup()ed
// and made ready to accept here.
Result<std::vector<UniqueFd>> AdoptSockets(const ListenerOptions& options) {
  std::vector<UniqueFd> adopted;
  const std::string wanted = options.address.ToString();
  for (int borrowed : options.adopt_sockets) {
    // A UDP listener on the same port has sockets of the same address.
    if (SocketType(borrowed) == SOCK_DGRAM) continue;
    Result<Address> bound = LocalAddress(borrowed);
    if (!bound || bound->ToString() != wanted) continue;
    const std::string what =
        "adopt the socket on " + wanted + " (fd " + std::to_string(borrowed) + ")";
    UniqueFd fd(::fcntl(borrowed, F_DUPFD_CLOEXEC, 0));
    if (!fd) return Error::FromErrno(errno, what + ": dup");
    // O_NONBLOCK belongs to the open file, which the other holders share:
    // they are zrelay's too and accept non-blocking already.
    const int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
      return Error::FromErrno(errno, what + ": O_NONBLOCK");
    }
    // Also tells a listening socket from one that is only bound (EINVAL
    // would come from a connected one): listen() again takes our backlog.
    if (::listen(fd.get(), options.backlog) != 0) return Error::FromErrno(errno, what + ": listen");
    adopted.push_back(std::move(fd));
  }
  return adopted;
}

}  // namespace

Result<std::unique_ptr<Listener>> Listener::Bind(WorkerPool& pool, const ListenerOptions& options,
                                                 AcceptHandler* handler) {
  std::unique_ptr<Listener> listener(new Listener());
  listener->pool_ = &pool;
  listener->max_connections_ = options.max_connections;
  ListenSocketOptions socket_options;
  socket_options.backlog = options.backlog;
  socket_options.reuse_port = true;

  Result<std::vector<UniqueFd>> adopted = AdoptSockets(options);
  if (!adopted) return adopted.error();
  std::vector<UniqueFd> sockets = std::move(adopted).value();
  // TCP: one SO_REUSEPORT socket per worker at least. The first socket
  // settles the address (the kernel's port for port 0); the others bind
  // that exact address. Unix sockets are bound once and shared (dup()s).
  const bool is_unix = options.address.is_unix();
  const size_t wanted = is_unix ? 1 : pool.size();
  if (!sockets.empty() && !is_unix) listener->local_address_ = options.address;  // matched it
  while (sockets.size() < wanted) {
    const Address& address = sockets.empty() ? options.address : listener->local_address_;
    Result<UniqueFd> fd = ListenOn(address, socket_options);
    if (!fd) return fd.error();
    sockets.push_back(std::move(fd).value());
    if (sockets.size() == 1 && !is_unix) {
      Result<Address> bound = LocalAddress(sockets[0].get());
      if (!bound) return bound.error();
      listener->local_address_ = *bound;
    }
  }
  if (is_unix) listener->local_address_ = options.address;
  if (options.tcp_nodelay) {
    for (const UniqueFd& fd : sockets) {
      if (Status st = SetNoDelay(fd.get()); !st) return st.error();
    }
  }
  if (Status st = listener->AddAcceptors(std::move(sockets), options, handler); !st) {
    return st.error();
  }
  return listener;
}

Status Listener::AddAcceptors(std::vector<UniqueFd> sockets, const ListenerOptions& options,
                              AcceptHandler* handler) {
  const size_t workers = pool_->size();
  for (UniqueFd& socket : sockets) {
    if (!local_address_.is_unix()) {
      const size_t worker = acceptors_.size() % workers;
      acceptors_.push_back(std::make_unique<WorkerAcceptor>(
          *this, worker, pool_->loop(worker), std::move(socket), options, handler, true));
      continue;
    }
    // Every worker races on accept4 on its dup(); the losers get EAGAIN.
    for (size_t worker = 0; worker < workers; ++worker) {
      UniqueFd fd(::fcntl(socket.get(), F_DUPFD_CLOEXEC, 0));
      if (!fd) return Error::FromErrno(errno, "listen on " + local_address_.ToString() + ": dup");
      acceptors_.push_back(std::make_unique<WorkerAcceptor>(
          *this, worker, pool_->loop(worker), std::move(fd), options, handler, worker == 0));
    }
  }
  return Status::Ok();
}

Status Listener::Accept() {
  const size_t workers = pool_->size();
  std::vector<Status> registered(acceptors_.size());
  pool_->RunOnEach([&](size_t worker) {
    for (size_t i = worker; i < acceptors_.size(); i += workers) {
      registered[i] = acceptors_[i]->Register();
    }
  });
  for (const Status& s : registered) {
    if (!s) {
      Stop();
      return Error(s.error().code(),
                   "listen on " + local_address_.ToString() + ": " + s.error().message());
    }
  }
  return Status::Ok();
}

Result<std::vector<UniqueFd>> Listener::ExportSockets() const {
  std::vector<UniqueFd> out;
  for (const auto& acceptor : acceptors_) {
    if (!acceptor->exported() || acceptor->stopped()) continue;
    UniqueFd fd(::fcntl(acceptor->fd(), F_DUPFD_CLOEXEC, 0));
    if (!fd) return Error::FromErrno(errno, "export the socket on " + local_address_.ToString());
    out.push_back(std::move(fd));
  }
  return out;
}

Listener::~Listener() { Stop(); }

void Listener::Stop() {
  if (acceptors_.empty() || acceptors_[0]->stopped()) return;
  // Release() posts no resume from here on.
  stopping_.store(true);
  // On each worker's own thread: once RunOnEach returns, no acceptor can be
  // inside or about to enter a handler call. Shutdown closes this
  // listener's descriptors only (no shutdown(), no unlink()): a socket
  // another holder adopted keeps its queue and goes on accepting there.
  const size_t workers = pool_->size();
  pool_->RunOnEach([this, workers](size_t worker) {
    for (size_t i = worker; i < acceptors_.size(); i += workers) acceptors_[i]->Shutdown();
  });
  // A Release() that began before stopping_ was set ran on a worker thread,
  // so it finished before that worker's Shutdown, but the resume it posted
  // to another worker may still be queued: one more pass runs after it, so
  // no task points into this listener once Stop() returns.
  pool_->RunOnEach([](size_t) {});
}

void Listener::BackOff(size_t worker) {
  for (size_t i = worker; i < acceptors_.size(); i += pool_->size()) acceptors_[i]->BackOff();
}

bool Listener::TakeSlot(std::memory_order order) {
  size_t open = open_.load(order);
  while (open < max_connections_) {
    if (open_.compare_exchange_weak(open, open + 1, order)) return true;
  }
  return false;
}

bool Listener::AcquireSlot(WorkerAcceptor& acceptor) {
  if (max_connections_ == 0) return true;
  // The data path: one relaxed compare-and-swap per accept.
  if (TakeSlot(std::memory_order_relaxed)) return true;
  // None left: say that this worker waits, then look once more. The waiter
  // flag and the slot count form a Dekker pair with Release() (both sides
  // seq_cst): either that look sees a slot given back meanwhile, or the
  // Release that gave it back sees the flag and posts a resume.
  // (Still set when a resume meant for an earlier wait arrived late.)
  if (!acceptor.waiting_for_slot.exchange(true)) waiting_workers_.fetch_add(1);
  if (TakeSlot(std::memory_order_seq_cst)) {
    // If a Release claimed the flag first, its resume is on the way: it
    // finds this worker accepting and does no harm.
    if (acceptor.waiting_for_slot.exchange(false)) waiting_workers_.fetch_sub(1);
    return true;
  }
  acceptor.PauseForSlot();
  return false;
}

void Listener::Release() {
  if (max_connections_ == 0) return;
  const size_t before = open_.fetch_sub(1);
  ZR_CHECK(before > 0, "Listener::Release without an accepted connection");
  if (waiting_workers_.load() == 0 || stopping_.load()) return;
  for (size_t i = 0; i < acceptors_.size(); ++i) {
    WorkerAcceptor* acceptor = acceptors_[i].get();
    if (!acceptor->waiting_for_slot.exchange(false)) continue;
    waiting_workers_.fetch_sub(1);
    pool_->loop(i % pool_->size()).Post([acceptor] { acceptor->ResumeForSlot(); });
  }
}

ListenerStats Listener::Stats() const {
  ListenerStats stats;
  for (const auto& acceptor : acceptors_) acceptor->AddStats(stats);
  return stats;
}

ListenerStats Listener::Stats(size_t worker) const {
  ListenerStats stats;
  for (size_t i = worker; i < acceptors_.size(); i += pool_->size()) {
    acceptors_[i]->AddStats(stats);
  }
  return stats;
}

}  // namespace zrelay
