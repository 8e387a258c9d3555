#include "tools/load/udp_backend.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>

#include "engine/event_loop.h"
#include "engine/socket.h"
#include "engine/unique_fd.h"
#include "tools/load/session.h"

namespace zrelay::load {
namespace {

constexpr unsigned kBatch = 32;         // datagrams per recvmmsg / sendmmsg
constexpr size_t kSlot = 65536;         // room for any UDP payload
constexpr int kBatchesPerTurn = 8;      // then the loop serves others first
constexpr int kSocketBuffer = 4 << 20;  // asked for; the kernel caps it

Result<UniqueFd> BindUdp(const Address& at) {
  UniqueFd fd(::socket(at.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::FromErrno(errno, "udp socket for " + at.ToString());
  const int one = 1;
  for (int option : {SO_REUSEADDR, SO_REUSEPORT}) {
    if (::setsockopt(fd.get(), SOL_SOCKET, option, &one, sizeof(one)) != 0) {
      return Error::FromErrno(errno,
                              std::string("udp ") + at.ToString() + ": " +
                                  (option == SO_REUSEADDR ? "SO_REUSEADDR" : "SO_REUSEPORT"));
    }
  }
  // Best effort: a smaller buffer only means the kernel drops sooner.
  (void)SetReceiveBuffer(fd.get(), kSocketBuffer);
  (void)SetSendBuffer(fd.get(), kSocketBuffer);
  if (::bind(fd.get(), at.sockaddr(), at.length()) != 0) {
    return Error::FromErrno(errno, "bind udp " + at.ToString());
  }
  return fd;
}

}  // namespace

class UdpEchoBackend::Socket final : public FdHandler, public ReadyHandler {
 public:
  Socket(EventLoop& loop, UniqueFd fd) : loop_(loop), fd_(std::move(fd)), buffers_(kBatch * kSlot) {
    std::memset(msgs_, 0, sizeof(msgs_));
  }
  ~Socket() override { watch_.Unregister(); }

  Status Register() { return watch_.Register(loop_, fd_.get(), this); }
  // Loop thread: stops serving and closes the socket.
  void Close() {
    closed_ = true;
    loop_.UnscheduleReady(this);
    watch_.Unregister();
    fd_.Reset();
  }

  Counter datagrams_in, datagrams_out, bytes_in, bytes_out, send_errors;

 private:
  void OnFdEvent(FdWatch&, uint32_t) override { Pump(); }
  void OnReady() override { Pump(); }
  void Pump();
  // Reads a batch into the slots; false when none came (EAGAIN or an error).
  bool Receive();
  // Sends the rest of the batch back; false while the socket is full.
  bool SendBack();

  EventLoop& loop_;
  UniqueFd fd_;
  FdWatch watch_;  // after fd_: unregistered before the fd closes
  std::vector<uint8_t> buffers_;
  struct mmsghdr msgs_[kBatch];
  struct iovec iov_[kBatch];
  struct sockaddr_storage peers_[kBatch];
  unsigned count_ = 0;  // datagrams in the batch
  unsigned next_ = 0;   // the first of them not yet sent back
  bool closed_ = false;
};

void UdpEchoBackend::Socket::Pump() {
  for (int round = 0; round < kBatchesPerTurn; ++round) {
    if (closed_) return;
    if (next_ < count_) {
      // EPOLLOUT (the writable flag coming back) resumes a blocked batch.
      if (!watch_.writable() || !SendBack()) return;
    }
    if (!watch_.readable() || !Receive()) return;
  }
  loop_.ScheduleReady(this);
}

bool UdpEchoBackend::Socket::Receive() {
  for (unsigned i = 0; i < kBatch; ++i) {
    iov_[i] = {buffers_.data() + i * kSlot, kSlot};
    struct msghdr& h = msgs_[i].msg_hdr;
    h.msg_name = &peers_[i];
    h.msg_namelen = sizeof(peers_[i]);
    h.msg_iov = &iov_[i];
    h.msg_iovlen = 1;
    h.msg_control = nullptr;
    h.msg_controllen = 0;
    h.msg_flags = 0;
    msgs_[i].msg_len = 0;
  }
  for (;;) {
    int rc = ::recvmmsg(fd_.get(), msgs_, kBatch, MSG_DONTWAIT, nullptr);
    if (rc > 0) {
      for (int i = 0; i < rc; ++i) {
        // Sent back as received: the same length, to the sender's address
        // (msg_name and msg_namelen as recvmmsg filled them in).
        iov_[i].iov_len = msgs_[i].msg_len;
        datagrams_in.Add(1);
        bytes_in.Add(msgs_[i].msg_len);
      }
      count_ = static_cast<unsigned>(rc);
      next_ = 0;
      return true;
    }
    if (rc < 0 && errno == EINTR) continue;
    // EAGAIN, or an error the next readiness event may clear.
    watch_.clear_readable();
    return false;
  }
}

bool UdpEchoBackend::Socket::SendBack() {
  while (next_ < count_) {
    int rc = ::sendmmsg(fd_.get(), msgs_ + next_, count_ - next_, 0);
    if (rc > 0) {
      for (unsigned i = next_; i < next_ + static_cast<unsigned>(rc); ++i) {
        datagrams_out.Add(1);
        bytes_out.Add(msgs_[i].msg_len);
      }
      next_ += static_cast<unsigned>(rc);
      continue;
    }
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      watch_.clear_writable();
      return false;
    }
    // This datagram cannot go (its sender's address, ENOBUFS): drop it.
    send_errors.Add(1);
    ++next_;
  }
  count_ = next_ = 0;
  return true;
}

// ---- UdpEchoBackend ----------------------------------------------------------

Result<std::unique_ptr<UdpEchoBackend>> UdpEchoBackend::Start(WorkerPool& pool,
                                                              const Config& config) {
  std::unique_ptr<UdpEchoBackend> backend(new UdpEchoBackend(pool));
  Address at = config.listen;
  for (size_t w = 0; w < pool.size(); ++w) {
    auto fd = BindUdp(at);
    if (!fd.ok()) return fd.error();
    if (w == 0) {
      // Port 0: the others bind to the port the kernel gave the first.
      auto local = LocalAddress(fd->get());
      if (!local.ok()) return local.error();
      at = *local;
      backend->address_ = at;
    }
    backend->sockets_.push_back(std::make_unique<Socket>(pool.loop(w), std::move(fd).value()));
  }
  std::mutex mu;
  std::optional<Error> failed;
  pool.RunOnEach([&](size_t w) {
    Status s = backend->sockets_[w]->Register();
    std::lock_guard<std::mutex> lock(mu);
    if (!s.ok() && !failed) failed = s.error();
  });
  if (failed) return *failed;  // the destructor closes what registered
  return backend;
}

UdpEchoBackend::UdpEchoBackend(WorkerPool& pool) : pool_(pool) {}

UdpEchoBackend::~UdpEchoBackend() { Stop(); }

void UdpEchoBackend::Stop() {
  if (stopped_) return;
  stopped_ = true;
  pool_.RunOnEach([this](size_t w) {
    if (w < sockets_.size()) sockets_[w]->Close();
  });
}

BackendTotals UdpEchoBackend::Totals() const {
  BackendTotals t;
  t.udp = true;
  for (const auto& s : sockets_) {
    t.datagrams_in += s->datagrams_in.Get();
    t.datagrams_out += s->datagrams_out.Get();
    t.bytes_in += s->bytes_in.Get();
    t.bytes_out += s->bytes_out.Get();
    t.send_errors += s->send_errors.Get();
  }
  return t;
}

}  // namespace zrelay::load
