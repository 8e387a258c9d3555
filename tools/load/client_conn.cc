#include "tools/load/client_conn.h"

#include <cerrno>
#include <utility>

#include "engine/socket.h"

namespace zrelay::load {

ClientConn::ClientConn(ClientSession& session, uint64_t id)
    : session_(session), id_(id), connector_(session.loop()), timer_(this) {}

ClientConn::~ClientConn() {
  connector_.Cancel();
  transport_.reset();  // before the fd it wraps
  watch_.Unregister();
}

void ClientConn::Stop() {
  CloseSocket();
  Finish();
}

void ClientConn::Abort() {
  CloseSocket(/*reset=*/true);
  Finish();
}

void ClientConn::Connect() {
  CloseSocket();
  phase_ = Phase::kConnecting;
  connector_.Start(session_.config().target, session_.config().connect_timeout, watch_, this);
}

void ClientConn::OnConnect(Result<UniqueFd> fd) {
  // The first connect's outcome frees this connection's place in the
  // session's window of connects in flight.
  if (!std::exchange(open_slot_released_, true)) session_.ReleaseOpenSlot();
  if (!fd.ok()) {
    int err = fd.error().code().value();
    phase_ = Phase::kClosed;
    Fail(ClassifyErrno(err), fd.error().message());
    return;
  }
  fd_ = std::move(fd).value();
  watch_.set_handler(this);
  (void)SetNoDelay(fd_.get());  // a no-op success on unix sockets
  counters().opened.Add(1);
  transport_ = session_.shared().make_transport(session_.loop(), watch_, fd_.get());
  phase_ = Phase::kHandshake;
  RunHandshake();
}

void ClientConn::RunHandshake() {
  IoResult r = transport_->Handshake();
  if (r.status == IoStatus::kOk) {
    phase_ = Phase::kOpen;
    OnConnected();
  } else if (r.status != IoStatus::kBlocked) {
    FailIo(r, "handshake");
  }
}

void ClientConn::OnFdEvent(FdWatch& watch, uint32_t) {
  if (phase_ == Phase::kHandshake) {
    RunHandshake();
    return;
  }
  if (phase_ != Phase::kOpen) return;
  if (watch.error()) {
    // EPOLLERR/EPOLLHUP: the pending error, if any, says why. Without one
    // (both directions shut down), the reads below find the EOF.
    int err = SocketError(fd_.get());
    if (err != 0) {
      Fail(ClassifyErrno(err), "socket: " + ErrnoText(err));
      return;
    }
  }
  Pump();
}

void ClientConn::OnReady() {
  if (phase_ == Phase::kOpen) {
    Pump();
  } else if (phase_ == Phase::kClosed || phase_ == Phase::kIdle) {
    OnReadyClosed();
  }
}

void ClientConn::OnTimer(Timer&) { OnTimerFired(); }

void ClientConn::OnTimerFired() { Fail(ErrorKind::kTimeout, "no progress within --io-timeout"); }

void ClientConn::OnFailed() { Finish(); }

void ClientConn::Fail(ErrorKind kind, const std::string& detail) {
  session_.RecordError(kind, detail);
  CloseSocket(/*reset=*/true);
  OnFailed();
}

void ClientConn::FailIo(const IoResult& r, const char* what) {
  if (r.status == IoStatus::kEof) {
    Fail(ErrorKind::kReset, std::string(what) + ": connection closed by the peer");
    return;
  }
  ErrorKind kind = r.err != 0 ? ClassifyErrno(r.err) : ErrorKind::kOther;
  Fail(kind, std::string(what) + ": " + r.detail);
}

void ClientConn::CloseSocket(bool reset) {
  connector_.Cancel();
  session_.loop().UnscheduleReady(this);
  CancelTimer();
  if (transport_ && !reset && phase_ == Phase::kOpen) transport_->CloseNotify();
  transport_.reset();
  watch_.Unregister();
  if (fd_.valid()) {
    if (reset) (void)SetLingerZero(fd_.get());
    fd_.Reset();
  }
  phase_ = Phase::kClosed;
}

void ClientConn::Finish() {
  if (finished_) return;
  finished_ = true;
  CloseSocket();
  const bool release = !std::exchange(open_slot_released_, true);
  session_.ConnFinished();
  if (release) session_.ReleaseOpenSlot();
}

}  // namespace zrelay::load
