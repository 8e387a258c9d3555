#include "tools/load/udp_flow.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "tools/load/pattern.h"
#include "tools/load/transport.h"
#include "tools/load/udp_payload.h"

namespace zrelay::load {
namespace {

// Datagrams one flow reads per turn before it lets the others go.
constexpr int kReadsPerTurn = 32;
// Sends retried at once after a pending ICMP error is reported on send.
constexpr int kSendAttempts = 3;
// Larger than any UDP payload (65,527 over IPv6), so MSG_TRUNC can only
// report a datagram too large for the request it answers.
constexpr size_t kReceiveSize = 65536;

// An ICMP error from the network (reported on a connected UDP socket).
bool IsUnreachable(int err) {
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH;
}

uint64_t NanosSince(TimePoint start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
}

}  // namespace

// ---- UdpSession -------------------------------------------------------------

UdpSession::UdpSession(EventLoop& loop, const Config& config, uint64_t key_seed, size_t worker,
                       size_t workers)
    : loop_(loop),
      config_(config),
      key_seed_(key_seed),
      worker_(worker),
      workers_(workers),
      run_timer_(this),
      receive_(kReceiveSize),
      datagram_(config.size) {}

UdpSession::~UdpSession() {
  stopping_ = true;
  loop_.CancelTimer(run_timer_);
  flows_.clear();
}

uint64_t UdpSession::ShareOf(uint64_t total) const {
  const uint64_t n = config_.flows;
  uint64_t share = 0;
  for (uint64_t i = worker_; i < n; i += workers_) share += total / n + (i < total % n ? 1 : 0);
  return share;
}

void UdpSession::Start() {
  start_ = Clock::now();
  if (config_.requests) {
    counted_ = true;
    budget_ = ShareOf(*config_.requests);
  }
  PatternTable();  // built before the first request is timed
  for (uint64_t id = worker_; id < config_.flows; id += workers_) {
    flows_.push_back(std::make_unique<UdpFlow>(*this, Mix64(key_seed_ + id)));
  }
  active_ = flows_.size();
  if (active_ == 0) {
    end_ = start_;
    done_.store(true, std::memory_order_release);
    return;
  }
  if (!counted_) loop_.ArmTimer(run_timer_, config_.duration);
  // Index loop: a flow may finish (never go away) while others start.
  for (size_t i = 0; i < flows_.size() && !stopping_; ++i) flows_[i]->Start();
}

void UdpSession::Stop() {
  if (stopping_) return;
  stopping_ = true;
  loop_.CancelTimer(run_timer_);
  for (size_t i = 0; i < flows_.size(); ++i) {
    if (!flows_[i]->finished()) flows_[i]->Stop();
  }
}

bool UdpSession::TakeBudget() {
  if (stopping_) return false;
  if (!counted_) return true;
  if (budget_ == 0) return false;
  --budget_;
  return true;
}

void UdpSession::RecordError(ErrorKind kind, const std::string& detail) {
  counters_.errors[static_cast<int>(kind)].Add(1);
  if (first_error_.empty()) first_error_ = detail;
}

void UdpSession::FlowFinished() {
  if (active_ > 0) --active_;
  if (active_ == 0 && !done()) {
    end_ = Clock::now();
    loop_.CancelTimer(run_timer_);
    done_.store(true, std::memory_order_release);
  }
}

// ---- UdpFlow ----------------------------------------------------------------

UdpFlow::UdpFlow(UdpSession& session, uint64_t key)
    : session_(session), key_(key), size_(session.config().size), timer_(this) {}

UdpFlow::~UdpFlow() {
  session_.loop().CancelTimer(timer_);
  watch_.Unregister();
}

void UdpFlow::Start() {
  const Address& target = session_.config().target;
  fd_.Reset(::socket(target.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_.valid()) {
    Fail(errno, "socket");
    return;
  }
  // Connected: send() needs no address, only the target's datagrams are
  // received, and ICMP errors are reported on the socket.
  if (::connect(fd_.get(), target.sockaddr(), target.length()) != 0) {
    Fail(errno, "connect to " + target.ToString());
    return;
  }
  if (Status s = watch_.Register(session_.loop(), fd_.get(), this); !s.ok()) {
    session_.RecordError(ErrorKind::kOther, s.error().message());
    Finish();
    return;
  }
  Next();
}

void UdpFlow::Next() {
  if (state_ == State::kDone) return;
  if (!session_.TakeBudget()) {
    Finish();
    return;
  }
  ++seq_;
  Send();
}

void UdpFlow::Send() {
  uint8_t* request = session_.datagram_buffer();
  FillDatagram(key_, seq_, size_, request);
  for (int attempt = 0; attempt < kSendAttempts; ++attempt) {
    // Before the send: over loopback the echo may be queued before send()
    // returns.
    const TimePoint before = Clock::now();
    ssize_t n = ::send(fd_.get(), request, size_, 0);
    if (n >= 0) {
      UdpCounters& c = session_.counters();
      c.sent.Add(1);
      c.bytes_up.Add(static_cast<uint64_t>(n));
      sent_at_ = before;
      state_ = State::kAwaiting;
      session_.loop().ArmTimer(timer_, session_.config().reply_timeout);
      return;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (IsUnreachable(err)) {
      // The error of an earlier datagram, reported (and cleared) here: this
      // one was not sent. Try again.
      session_.counters().unreachable.Add(1);
      continue;
    }
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
      // A full socket buffer: wait for EPOLLOUT, or the timer if none comes.
      watch_.clear_writable();
      state_ = State::kBlocked;
      session_.loop().ArmTimer(timer_, session_.config().reply_timeout);
      return;
    }
    Fail(err, "send");
    return;
  }
  // ICMP errors kept coming: the request counts as sent and, after the
  // wait a silent loss costs, as lost.
  state_ = State::kAwaiting;
  session_.counters().sent.Add(1);
  sent_at_ = Clock::now();
  session_.loop().ArmTimer(timer_, session_.config().reply_timeout);
}

void UdpFlow::OnFdEvent(FdWatch& watch, uint32_t events) {
  if (state_ == State::kDone) return;
  // An ICMP error raises EPOLLERR without EPOLLIN: recv() reports it.
  if (watch.readable() || (events & EPOLLERR) != 0) Receive();
  if (state_ == State::kBlocked && watch_.writable()) Send();
}

void UdpFlow::OnTimer(Timer&) {
  switch (state_) {
    case State::kAwaiting:
      session_.counters().lost.Add(1);
      Next();
      return;
    case State::kBlocked:
      Send();
      return;
    case State::kIdle:
    case State::kDone:
      return;
  }
}

void UdpFlow::Receive() {
  for (int i = 0; i < kReadsPerTurn; ++i) {
    if (state_ == State::kDone) return;
    ssize_t n = ::recv(fd_.get(), session_.receive_buffer(), session_.receive_size(), MSG_TRUNC);
    if (n >= 0) {
      const size_t len = static_cast<size_t>(n);
      UdpCounters& c = session_.counters();
      c.received.Add(1);
      c.bytes_down.Add(len);
      OnDatagram(session_.receive_buffer(), len);
      continue;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      watch_.clear_readable();
      return;
    }
    if (IsUnreachable(err)) {
      // The request in flight will time out: no reply is coming.
      session_.counters().unreachable.Add(1);
      continue;
    }
    Fail(err, "recv");
    return;
  }
  if (state_ != State::kDone) session_.loop().ScheduleReady(this);
}

void UdpFlow::OnDatagram(const uint8_t* data, size_t len) {
  // len may exceed the buffer (MSG_TRUNC): the bytes are then only looked at
  // when len equals the request's size, which always fits.
  UdpCounters& c = session_.counters();
  if (state_ == State::kAwaiting && IsRequest(seq_, data, len)) {
    session_.histogram().Record(NanosSince(sent_at_));
    c.replies.Add(1);
    session_.loop().CancelTimer(timer_);
    Next();
    return;
  }
  if (IsEarlierRequest(data, len)) {
    c.late.Add(1);
    return;
  }
  // Another flow's datagram, or ours corrupted: counted, and the request
  // waits on for its own reply (or its timeout). Ending it here would put a
  // second request in flight whenever a relay hands this flow a stranger's
  // datagram.
  c.mismatches.Add(1);
}

bool UdpFlow::IsRequest(uint64_t seq, const uint8_t* data, size_t len) {
  if (len != size_) return false;
  // With a header, a datagram that names another request is not this one.
  if (auto named = HeaderSeq(key_, data, len); len >= kUdpHeaderSize && named != seq) {
    return false;
  }
  uint8_t* expected = session_.datagram_buffer();
  FillDatagram(key_, seq, size_, expected);
  return std::memcmp(data, expected, size_) == 0;
}

bool UdpFlow::IsEarlierRequest(const uint8_t* data, size_t len) {
  if (len != size_ || seq_ <= 1) return false;
  // With a header, the datagram names its request: any earlier one.
  if (auto seq = HeaderSeq(key_, data, len)) {
    return *seq >= 1 && *seq < seq_ && IsRequest(*seq, data, len);
  }
  if (len >= kUdpHeaderSize) return false;  // a header, but not ours
  // Without one, the few requests before are tried.
  const uint64_t first = seq_ > kRecent ? seq_ - kRecent : 1;
  for (uint64_t seq = seq_ - 1; seq >= first; --seq) {
    if (IsRequest(seq, data, len)) return true;
  }
  return false;
}

void UdpFlow::Fail(int err, const std::string& what) {
  session_.RecordError(ClassifyErrno(err), what + ": " + ErrnoText(err));
  Finish();
}

void UdpFlow::Finish() {
  if (state_ == State::kDone) return;
  state_ = State::kDone;
  session_.loop().CancelTimer(timer_);
  session_.loop().UnscheduleReady(this);
  watch_.Unregister();
  fd_.Reset();
  session_.FlowFinished();
}

}  // namespace zrelay::load
