#include "relay/health_probe.h"

#include <sys/socket.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include "engine/check.h"
#include "ssl/tls_context.h"

namespace zrelay {
namespace {

// Bytes a server may send after the handshake (session tickets, a banner)
// that a closing check reads and drops: enough for tickets, bounded so a
// server streaming data cannot hold the loop.
constexpr size_t kDrainChunk = 4096;
constexpr int kMaxDrainChunks = 16;

Error TlsError(const TlsResult& r, const std::string& what) {
  const int code = r.sys_errno != 0 ? r.sys_errno : EPROTO;
  return Error(std::error_code(code, std::system_category()), what + ": " + r.detail);
}

}  // namespace

std::string FormatMs(Duration d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count()) + " ms";
}

HealthProbe::HealthProbe(EventLoop& loop, HealthTarget target)
    : loop_(loop), target_(std::move(target)), connector_(loop), timer_(this) {}

HealthProbe::~HealthProbe() { Cancel(); }

void HealthProbe::Start(Duration timeout, HealthProbeHandler* handler) {
  ZR_CHECK(!in_progress(), "HealthProbe::Start while a check is in progress");
  CloseSocket();
  handler_ = handler;
  timeout_ = timeout;
  deadline_ = loop_.now() + timeout;
  state_ = State::kConnecting;
  connector_.Start(target_.address, timeout, watch_, this);
}

void HealthProbe::Cancel() {
  connector_.Cancel();  // unregisters the watch and closes a socket still connecting
  CloseSocket();
  handler_ = nullptr;
}

void HealthProbe::OnConnect(Result<UniqueFd> fd) {
  if (!fd.ok()) {
    state_ = State::kIdle;  // the connector closed its socket
    const std::error_code code = fd.error().code();
    // The connector's message names the address; the caller knows it.
    Done(Error(code, code == std::errc::timed_out ? "connect: timed out after " + FormatMs(timeout_)
                                                  : "connect: " + code.message()));
    return;
  }
  fd_ = std::move(fd).value();
  watch_.set_handler(this);
  if (target_.tls == nullptr) {
    CloseSocket();
    Done(Status::Ok());
    return;
  }
  SSL* ssl = NewClientSsl(target_.tls, fd_.get(), target_.sni);
  if (ssl == nullptr) {
    CloseSocket();
    Done(Error::Invalid("TLS handshake: cannot make a client connection for SNI '" + target_.sni +
                        "'"));
    return;
  }
  tls_ = TlsStream(ssl);
  state_ = State::kHandshaking;
  loop_.ArmTimer(timer_, deadline_ - loop_.now());
  DriveHandshake();
}

void HealthProbe::OnFdEvent(FdWatch&, uint32_t) {
  // Edge-triggered: each step below retries its call until it would block,
  // so any event is worth one more try, and a spurious one costs a syscall.
  if (state_ == State::kHandshaking) {
    DriveHandshake();
  } else if (state_ == State::kClosing) {
    DriveClose();
  }
}

void HealthProbe::OnTimer(Timer&) {
  const State state = state_;
  CloseSocket();
  if (state == State::kHandshaking) {
    Done(Error(std::make_error_code(std::errc::timed_out),
               "TLS handshake: timed out after " + FormatMs(timeout_)));
  }
  // kClosing: the check already passed; a server that never finishes the
  // close only loses its connection now.
}

void HealthProbe::DriveHandshake() {
  const TlsResult r = tls_.Handshake();
  if (r.would_block()) return;
  if (r.ok()) {
    BeginClose();
    Done(Status::Ok());
    return;
  }
  CloseSocket();
  Done(TlsError(r, "TLS handshake"));
}

void HealthProbe::BeginClose() {
  state_ = State::kClosing;  // timer_ stays armed for the check's deadline
  // On a fresh connection the socket buffer has room: close_notify goes out
  // at once. If it cannot, the close is no longer clean anyway.
  if (!tls_.Shutdown().ok() || !loop_.sys().Shutdown(fd_.get(), SHUT_WR).ok()) {
    CloseSocket();
    return;
  }
  DriveClose();
}

void HealthProbe::DriveClose() {
  char buf[kDrainChunk];
  for (int i = 0; i < kMaxDrainChunks; ++i) {
    const TlsResult r = tls_.Read(buf, sizeof buf);
    if (r.would_block()) return;  // more to come: wait for an event or the deadline
    if (!r.ok()) break;           // close_notify, EOF or an error: the server is done
  }
  CloseSocket();
}

void HealthProbe::CloseSocket() {
  loop_.CancelTimer(timer_);
  // Not UnregisterForClose(): a check is rare enough that the epoll_ctl does
  // not matter, and a child forked meanwhile may share the descriptor, which
  // would keep it in epoll after our close.
  if (fd_.valid()) watch_.Unregister();
  tls_ = TlsStream();
  fd_.Reset();
  state_ = State::kIdle;
}

void HealthProbe::Done(Status result) {
  HealthProbeHandler* handler = std::exchange(handler_, nullptr);
  // Last touch of `this`: the handler may start the next check.
  handler->OnProbeDone(std::move(result));
}

}  // namespace zrelay
