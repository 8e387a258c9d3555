#include "engine/uring_ring.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iterator>

#include "engine/check.h"

namespace zrelay {
namespace {

// Best first. DEFER_TASKRUN needs SINGLE_ISSUER; both are Linux 6.1,
// COOP_TASKRUN is 5.19. Older kernels reject unknown flags with EINVAL.
constexpr unsigned kFlagLadder[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
    IORING_SETUP_COOP_TASKRUN,
    0,
};

struct NamedFlag {
  unsigned flag;
  const char* name;
};
constexpr NamedFlag kFlagNames[] = {
    {IORING_SETUP_SINGLE_ISSUER, "SINGLE_ISSUER"},
    {IORING_SETUP_DEFER_TASKRUN, "DEFER_TASKRUN"},
    {IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"},
};

// The operations zrelay's data path issues (Cancel needs ASYNC_CANCEL).
struct NamedOp {
  int opcode;
  const char* name;
};
constexpr NamedOp kRequiredOps[] = {
    {IORING_OP_ACCEPT, "accept"},     {IORING_OP_CONNECT, "connect"},
    {IORING_OP_RECV, "recv"},         {IORING_OP_SEND, "send"},
    {IORING_OP_SPLICE, "splice"},     {IORING_OP_CLOSE, "close"},
    {IORING_OP_POLL_ADD, "poll_add"}, {IORING_OP_TIMEOUT, "timeout"},
    {IORING_OP_ASYNC_CANCEL, "async_cancel"},
};

Error Unavailable(int err) {
  std::string hint;
  if (err == EPERM || err == EACCES) {
    hint = " (kernel.io_uring_disabled=2? or a seccomp filter blocks io_uring_setup)";
  } else if (err == ENOSYS) {
    hint = " (kernel built without io_uring, or a seccomp filter hides io_uring_setup)";
  }
  return Error::FromErrno(err, "io_uring unavailable: io_uring_setup failed" + hint);
}

struct __kernel_timespec ToTimespec(Duration d) {
  if (d < Duration::zero()) d = Duration::zero();
  auto secs = std::chrono::duration_cast<seconds>(d);
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(d - secs);
  struct __kernel_timespec ts {};
  ts.tv_sec = secs.count();
  ts.tv_nsec = nanos.count();
  return ts;
}

uint64_t UserData(UringOp* op) { return reinterpret_cast<uint64_t>(op); }

}  // namespace

UringOwnedOp::UringOwnedOp(UringRing& ring) : ring_(ring) {
  next_ = ring.owned_;
  if (next_ != nullptr) next_->prev_ = this;
  ring.owned_ = this;
}

UringOwnedOp::~UringOwnedOp() {
  if (prev_ != nullptr) prev_->next_ = next_;
  if (next_ != nullptr) next_->prev_ = prev_;
  if (ring_.owned_ == this) ring_.owned_ = next_;
}

void UringOwnedOp::OnCompletion(UringOp&, int res, uint32_t flags) {
  Completed(res, flags);
  if (!op.in_flight() && Finish()) delete this;
}

UringOp::~UringOp() {
  ZR_CHECK(!in_flight_, "UringOp destroyed while its request is in flight: cancel it and "
                        "wait for the final completion first");
}

Result<std::unique_ptr<UringRing>> UringRing::Create(unsigned entries, UringInitFn init) {
  std::unique_ptr<UringRing> ring(new UringRing());
  int rc = -EINVAL;
  for (unsigned flags : kFlagLadder) {
    struct io_uring_params params {};
    // R_DISABLED (5.10): the ring binds to a thread when enabled, at its first
    // submit, not here, so a worker's ring can be created by another thread.
    params.flags = flags | IORING_SETUP_R_DISABLED;
    rc = init(entries, &ring->ring_, &params);
    if (rc == 0) {
      ring->live_ = true;
      ring->setup_flags_ = flags;
      break;
    }
    if (rc != -EINVAL) break;  // only "flag unknown" is worth another rung
  }
  if (rc == -EINVAL) {
    return Error::FromErrno(EINVAL, "io_uring_setup with " + std::to_string(entries) +
                                        " entries (1 to 32768)");
  }
  if (rc != 0) return Unavailable(-rc);

  // From here ~UringRing releases the ring.
  constexpr unsigned kNeededFeatures = IORING_FEAT_EXT_ARG | IORING_FEAT_NODROP;
  if ((ring->ring_.features & kNeededFeatures) != kNeededFeatures) {
    // EXT_ARG: the wait timeout without a timeout SQE; NODROP: a full CQ
    // keeps completions instead of losing them.
    return Error::FromErrno(ENOTSUP, "io_uring lacks IORING_FEAT_EXT_ARG or "
                                     "IORING_FEAT_NODROP (Linux 5.11 or newer needed)");
  }
  struct io_uring_probe* probe = io_uring_get_probe_ring(&ring->ring_);
  if (probe == nullptr) return Error::FromErrno(ENOTSUP, "io_uring cannot probe its operations");
  for (const NamedOp& op : kRequiredOps) {
    if (!io_uring_opcode_supported(probe, op.opcode)) {
      io_uring_free_probe(probe);
      return Error::FromErrno(ENOTSUP, std::string("io_uring lacks the ") + op.name +
                                           " operation (kernel too old)");
    }
  }
  io_uring_free_probe(probe);
  return ring;
}

UringRing::~UringRing() {
  // Self-owned ops still alive: their requests die with the ring.
  while (owned_ != nullptr) {
    Abandon(owned_->op);
    delete owned_;
  }
  if (!live_) return;  // Create() failed before the ring existed
  ZR_CHECK(in_flight_ == 0, "UringRing destroyed with %zu operations in flight", in_flight_);
  io_uring_queue_exit(&ring_);
}

std::string UringRing::SetupFlagsName() const {
  std::string name;
  for (const NamedFlag& f : kFlagNames) {
    if ((setup_flags_ & f.flag) == 0) continue;
    if (!name.empty()) name += '|';
    name += f.name;
  }
  return name.empty() ? "none" : name;
}

struct io_uring_sqe* UringRing::NextSqe(UringOp* op) {
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    // The kernel consumes submitted SQEs during the call, so this frees the
    // whole SQ. It does not reap: completions wait in the CQ (or, with
    // NODROP, in the kernel's overflow list) for the next RunOnce.
    ++stats_.sq_full_flushes;
    SubmitQueued();
    sqe = io_uring_get_sqe(&ring_);
    ZR_CHECK(sqe != nullptr, "io_uring SQ still full after a submit");
  }
  if (op != nullptr) {
    ZR_CHECK(!op->in_flight_, "UringOp prepared while its previous request is in flight");
    op->in_flight_ = true;
    ++in_flight_;
  }
  ++stats_.sqes;
  return sqe;
}

void UringRing::Accept(UringOp& op, int listen_fd) {
  struct io_uring_sqe* sqe = NextSqe(&op);
  io_uring_prep_multishot_accept(sqe, listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, UserData(&op));
}

void UringRing::Connect(UringOp& op, int fd, const struct sockaddr* addr, socklen_t len) {
  struct io_uring_sqe* sqe = NextSqe(&op);
  io_uring_prep_connect(sqe, fd, addr, len);
  io_uring_sqe_set_data64(sqe, UserData(&op));
}

void UringRing::Recv(UringOp& op, int fd, void* buf, size_t len) {
  struct io_uring_sqe* sqe = NextSqe(&op);
  io_uring_prep_recv(sqe, fd, buf, len, 0);
  io_uring_sqe_set_data64(sqe, UserData(&op));
}

void UringRing::RecvNow(UringOp& op, int fd, void* buf, size_t len) {
  struct io_uring_sqe* sqe = NextSqe(&op);
  io_uring_prep_recv(sqe, fd, buf, len, MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, UserData(&op));
}

void UringRing::Send(UringOp& op, int fd, const void* buf, size_t len) {
  struct io_uring_sqe* sqe = NextSqe(&op);
  io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, UserData(&op));
}

void UringRing::SendAll(UringOp& op, int fd, const void* buf, size_t len) {
  struct io_uring_sqe* sqe = NextSqe(&op);
  io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL | MSG_WAITALL);
  io_uring_sqe_set_data64(sqe, UserData(&op));
}

void UringRing::Splice(UringOp& op, int fd_in, int fd_out, size_t len) {
  struct io_uring_sqe* sqe = NextSqe(&op);
  io_uring_prep_splice(sqe, fd_in, -1, fd_out, -1, static_cast<unsigned>(len),
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  io_uring_sqe_set_data64(sqe, UserData(&op));
}

void UringRing::Close(UringOp& op, int fd) {
  struct io_uring_sqe* sqe = NextSqe(&op);
  io_uring_prep_close(sqe, fd);
  io_uring_sqe_set_data64(sqe, UserData(&op));
}

void UringRing::CloseDetached(int fd) {
  struct io_uring_sqe* sqe = NextSqe(nullptr);
  io_uring_prep_close(sqe, fd);
  io_uring_sqe_set_data64(sqe, 0);  // dispatched to nobody
}

void UringRing::PollAdd(UringOp& op, int fd, unsigned events) {
  struct io_uring_sqe* sqe = NextSqe(&op);
  io_uring_prep_poll_add(sqe, fd, events);
  io_uring_sqe_set_data64(sqe, UserData(&op));
}

void UringRing::PollMultishot(UringOp& op, int fd, unsigned events) {
  struct io_uring_sqe* sqe = NextSqe(&op);
  io_uring_prep_poll_multishot(sqe, fd, events);
  io_uring_sqe_set_data64(sqe, UserData(&op));
}

void UringRing::Cancel(UringOp& op) {
  if (!op.in_flight_) return;
  struct io_uring_sqe* sqe = NextSqe(nullptr);
  io_uring_prep_cancel64(sqe, UserData(&op), 0);
  io_uring_sqe_set_data64(sqe, 0);  // its own CQE (0, -ENOENT, -EALREADY) tells nothing new
}

void UringRing::Abandon(UringOp& op) {
  if (!op.in_flight_) return;
  op.in_flight_ = false;
  --in_flight_;
}

void UringRing::BindToThisThread() {
  if (enabled_) return;
  int rc = io_uring_enable_rings(&ring_);
  ZR_CHECK(rc == 0, "io_uring_enable_rings: %s", std::strerror(-rc));
  enabled_ = true;
}

void UringRing::SubmitQueued() {
  ++stats_.submits;
  BindToThisThread();
  int rc = io_uring_submit(&ring_);
  ZR_CHECK(rc >= 0, "io_uring_submit: %s", std::strerror(-rc));
}

int UringRing::RunOnce(Duration max_wait) {
  BindToThisThread();
  struct __kernel_timespec ts = ToTimespec(max_wait);
  struct io_uring_cqe* first = nullptr;
  ++stats_.submits;
  int rc = io_uring_submit_and_wait_timeout(&ring_, &first, 1, &ts, nullptr);
  // ETIME: nothing completed in time; EINTR: a signal; EAGAIN/EBUSY: the CQ
  // overflowed and must be reaped first, which is what comes next.
  ZR_CHECK(rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY,
           "io_uring_submit_and_wait_timeout: %s", std::strerror(-rc));

  // Copy a batch out and release its slots before dispatching: a handler may
  // flush a full SQ, and the kernel may then post new CQEs.
  int dispatched = 0;
  struct io_uring_cqe* batch[64];
  while (true) {
    unsigned n = io_uring_peek_batch_cqe(&ring_, batch, std::size(batch));
    if (n == 0) break;
    struct io_uring_cqe copies[std::size(batch)];
    for (unsigned i = 0; i < n; ++i) copies[i] = *batch[i];
    io_uring_cq_advance(&ring_, n);
    stats_.cqes += n;
    for (unsigned i = 0; i < n; ++i) {
      if (copies[i].user_data == 0) continue;  // a cancel's or a detached close's
      Dispatch(copies[i]);
      ++dispatched;
    }
  }
  return dispatched;
}

void UringRing::Dispatch(const struct io_uring_cqe& cqe) {
  UringOp* op = reinterpret_cast<UringOp*>(cqe.user_data);
  ZR_CHECK(op->in_flight_, "io_uring completion for an op that is not in flight");
  if ((cqe.flags & IORING_CQE_F_MORE) == 0) {
    op->in_flight_ = false;
    --in_flight_;
  }
  op->handler_->OnCompletion(*op, cqe.res, cqe.flags);
}

}  // namespace zrelay
