#include "relay/connection_impl.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "engine/socket.h"
#include "relay/worker.h"
#include "ssl/prefixed_bio.h"

namespace zrelay {
namespace {

// Bytes asked of the socket per read call.
constexpr size_t kReadChunk = 16 << 10;

std::string Milliseconds(Duration d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count()) + " ms";
}

Error TlsError(const TlsResult& r, const char* what) {
  const int code = r.sys_errno != 0 ? r.sys_errno : EPROTO;
  return Error(std::error_code(code, std::generic_category()), std::string(what) + ": " + r.detail);
}

}  // namespace

ConnectionImpl::ConnectionImpl(Worker& worker, const Address& peer) : worker_(worker), peer_(peer) {
  worker_.AddConnection(this);
}

ConnectionImpl::~ConnectionImpl() { Close(); }

ConnectionPtr ConnectionImpl::Adopt(Worker& worker, UniqueFd fd, const Address& peer, bool accepted,
                                    ListenerTie tie) {
  ConnectionPtr out(new ConnectionImpl(worker, peer));
  auto* c = static_cast<ConnectionImpl*>(out.get());
  c->tie_ = std::move(tie);
  c->fd_ = std::move(fd);
  if (!c->fd_.valid()) {
    c->broken_ = Error(std::error_code(EBADF, std::generic_category()), "no file descriptor");
    return out;
  }
  if (!accepted) {
    // Embedders may hand over blocking sockets; the loop needs non-blocking.
    const int flags = ::fcntl(c->fd_.get(), F_GETFL);
    if (flags >= 0 && !(flags & O_NONBLOCK)) ::fcntl(c->fd_.get(), F_SETFL, flags | O_NONBLOCK);
    (void)SetNoDelay(c->fd_.get());  // a protocol phase is small messages
  }
  Status st = c->watch_.Register(c->loop(), c->fd_.get(), c);
  if (!st.ok()) {
    c->broken_ = Error(st.error().code(), "cannot watch the socket: " + st.error().message());
  }
  return out;
}

EventLoop& ConnectionImpl::loop() const { return worker_.loop(); }
size_t ConnectionImpl::worker() const { return worker_.index(); }

std::string_view ConnectionImpl::tls_version() const {
  return tls_ && !pending_tls_ ? tls_->version() : std::string_view();
}

std::string_view ConnectionImpl::sni() const {
  return tls_ && !pending_tls_ && tls_role_ == TlsRole::kServer ? tls_->sni() : std::string_view();
}

// --- operations -----------------------------------------------------------

void ConnectionImpl::ReadLine(ReadHandler done, size_t max_line) {
  BeginRead(ReadKind::kLine, max_line, std::move(done));
}

void ConnectionImpl::ReadExactly(size_t n, ReadHandler done) {
  BeginRead(ReadKind::kExactly, n, std::move(done));
}

void ConnectionImpl::ReadSome(ReadHandler done, size_t max) {
  BeginRead(ReadKind::kSome, max, std::move(done));
}

void ConnectionImpl::BeginRead(ReadKind kind, size_t size, ReadHandler done) {
  if (closed_) return;
  const bool empty_request = size == 0 && kind != ReadKind::kExactly;
  if (broken_ || read_kind_ != ReadKind::kNone || pending_tls_ || empty_request) {
    Error error = broken_ ? *broken_
                  : empty_request
                      ? Error::Invalid("a read of at most 0 bytes")
                      : Error(std::error_code(EBUSY, std::generic_category()),
                              read_kind_ != ReadKind::kNone ? "a read is already pending"
                                                            : "StartTls is running");
    Later([done = std::move(done), error = std::move(error)]() mutable { done(error); });
    return;
  }
  read_kind_ = kind;
  read_size_ = size;
  read_done_ = std::move(done);
  Arm(read_timer_);
  loop().ScheduleReady(this);
}

void ConnectionImpl::Write(std::string data, DoneHandler done) {
  if (closed_) return;
  if (broken_ || pending_tls_) {
    Error error =
        broken_ ? *broken_
                : Error(std::error_code(EBUSY, std::generic_category()), "StartTls is running");
    Later([done = std::move(done), error = std::move(error)]() mutable {
      if (done) done(error);
    });
    return;
  }
  const TimePoint deadline =
      timeout_ > Duration::zero() ? loop().now() + timeout_ : TimePoint::max();
  out_.Push(std::move(data), std::move(done), deadline);
  RearmWriteTimer();
  loop().ScheduleReady(this);
}

void ConnectionImpl::StartTls(SSL_CTX* ctx, TlsRole role, DoneHandler done, std::string sni) {
  if (closed_) return;
  std::optional<Error> refused = broken_;
  if (!refused) {
    if (ctx == nullptr) {
      refused = Error::Invalid("StartTls without a TLS context");
    } else if (tls_ || pending_tls_) {
      refused = Error::Invalid("TLS is already started on this connection");
    } else if (read_kind_ != ReadKind::kNone) {
      refused = Error(std::error_code(EBUSY, std::generic_category()),
                      "StartTls while a read is pending");
    }
  }
  if (refused) {
    Later([done = std::move(done), error = std::move(*refused)]() mutable {
      if (done) done(error);
    });
    return;
  }
  pending_tls_ = PendingTls{TlsContext::Share(ctx), role, std::move(sni), std::move(done)};
  tls_role_ = role;
  Arm(tls_timer_);
  loop().ScheduleReady(this);
}

void ConnectionImpl::Connect(const Address& address, Duration timeout, ConnectionHandler done) {
  if (closed_) return;
  if (timeout_ > Duration::zero()) timeout = std::min(timeout, timeout_);
  auto* child = new ConnectionImpl(worker_, address);
  child->origin_ = this;
  child->connect_done_ = std::move(done);
  child->connector_ = std::make_unique<Connector>(loop());
  connecting_.push_back(child);
  // The Connector reports from the loop, never from inside Start().
  child->connector_->Start(address, timeout, child->watch_, child);
}

void ConnectionImpl::OnConnect(Result<UniqueFd> fd) {
  ConnectionImpl* origin = std::exchange(origin_, nullptr);
  auto& siblings = origin->connecting_;
  siblings.erase(std::find(siblings.begin(), siblings.end(), this));
  ConnectionHandler done = std::move(connect_done_);
  ConnectionPtr self(this);  // dropped unless handed to `done`
  if (!fd.ok()) {
    if (done) done(fd.error());
    return;
  }
  fd_ = std::move(fd).value();
  watch_.set_handler(this);
  (void)SetNoDelay(fd_.get());
  if (done) done(std::move(self));
}

void ConnectionImpl::After(Duration delay, UniqueFunction<void()> fn) {
  if (closed_ || !fn) return;
  AfterTimer& timer = after_.emplace_back(this, std::move(fn));
  loop().ArmTimer(timer.timer, delay);
}

void ConnectionImpl::FireAfter(AfterTimer* timer) {
  auto it = std::find_if(after_.begin(), after_.end(),
                         [timer](const AfterTimer& t) { return &t == timer; });
  UniqueFunction<void()> fn = std::move(it->fn);
  after_.erase(it);
  fn();
}

// --- progress -------------------------------------------------------------

void ConnectionImpl::OnFdEvent(FdWatch& /*watch*/, uint32_t /*events*/) { Progress(); }

void ConnectionImpl::Progress() {
  if (closed_) return;
  // Plaintext writes queued before StartTls go out first; then the
  // handshake; then writes over TLS.
  if (!broken_ && !(pending_tls_ && tls_)) FlushWrites();
  if (!broken_ && pending_tls_ && out_.empty()) {
    if (!tls_) BeginHandshake();
    if (!broken_ && pending_tls_) StepHandshake();
  }
  if (!broken_ && read_kind_ != ReadKind::kNone && !AnswerRead()) FillForRead();
  // Handlers last, each from a clean state; one of them may close us.
  std::vector<UniqueFunction<void()>> finished = std::move(finished_);
  finished_.clear();
  for (auto& fn : finished) {
    if (closed_) break;  // dropped: a closed Connection calls no handler
    fn();
  }
}

void ConnectionImpl::Later(UniqueFunction<void()> fn) {
  if (closed_) return;
  finished_.push_back(std::move(fn));
  loop().ScheduleReady(this);
}

bool ConnectionImpl::AnswerRead() {
  std::string data;
  bool answered = false;
  switch (read_kind_) {
    case ReadKind::kNone:
      return true;
    case ReadKind::kLine:
      switch (in_.TakeLine(read_size_, data)) {
        case ReadBuffer::LineStatus::kLine:
          answered = true;
          break;
        case ReadBuffer::LineStatus::kNeedMore:
          break;
        case ReadBuffer::LineStatus::kTooLong:
          Break(Error(std::error_code(EMSGSIZE, std::generic_category()),
                      "no line end within " + std::to_string(read_size_) + " bytes from " +
                          peer_.ToString()));
          return true;
      }
      break;
    case ReadKind::kExactly:
      if (in_.size() >= read_size_) {
        data = in_.Take(read_size_);
        answered = true;
      }
      break;
    case ReadKind::kSome:
      if (!in_.empty()) {
        data = in_.Take(std::min(read_size_, in_.size()));
        answered = true;
      }
      break;
  }
  if (!answered && !eof_) return false;
  loop().CancelTimer(read_timer_.timer);
  read_kind_ = ReadKind::kNone;
  ReadHandler done = std::move(read_done_);
  if (answered) {
    finished_.push_back(
        [done = std::move(done), data = std::move(data)]() mutable { done(std::move(data)); });
    return true;
  }
  // The peer ended its side first: what it sent stays buffered.
  Error error(std::error_code(ENODATA, std::generic_category()),
              eof_detail_ + (in_.empty() ? std::string()
                                         : " (" + std::to_string(in_.size()) + " bytes buffered)"));
  finished_.push_back(
      [done = std::move(done), error = std::move(error)]() mutable { done(error); });
  return true;
}

void ConnectionImpl::FillForRead() {
  while (!broken_ && !eof_) {
    if (tls_) {
      char* at = in_.Reserve(kReadChunk);
      TlsResult r = tls_->Read(at, kReadChunk);
      in_.Commit(r.ok() ? r.bytes : 0);
      if (r.would_block()) return;
      if (r.status == TlsIo::kEof) {
        eof_ = true;
        eof_detail_ = "peer sent close_notify";
      } else if (r.status == TlsIo::kTruncated) {
        eof_ = true;
        eof_detail_ = "peer closed the connection without close_notify";
      } else if (r.status == TlsIo::kError) {
        return Break(TlsError(r, "TLS read"));
      }
    } else {
      if (!watch_.readable()) return;
      char* at = in_.Reserve(kReadChunk);
      SysResult r = loop().sys().Read(fd_.get(), at, kReadChunk);
      in_.Commit(r.rc > 0 ? static_cast<size_t>(r.rc) : 0);
      if (r.would_block()) {
        watch_.clear_readable();
        return;
      }
      if (r.rc == 0) {
        eof_ = true;
        eof_detail_ = "peer closed the connection";
      } else if (!r.ok() && r.err != EINTR) {
        return Break(Error::FromErrno(r.err, "read from " + peer_.ToString()));
      }
    }
    if (AnswerRead()) return;
  }
  AnswerRead();  // at EOF: what is buffered, or ENODATA
}

void ConnectionImpl::FlushWrites() {
  std::vector<DoneHandler> done;
  while (!out_.empty() && !broken_) {
    const std::string_view bytes = out_.Front();
    size_t sent = 0;
    if (bytes.empty()) {
      // an empty write completes in order, with nothing to send
    } else if (tls_) {
      TlsResult r = tls_->Write(bytes.data(), bytes.size());
      if (r.would_block()) break;
      if (!r.ok()) return Break(TlsError(r, "TLS write"));
      sent = r.bytes;
    } else {
      if (!watch_.writable()) break;
      SysResult r = loop().sys().Send(fd_.get(), bytes.data(), bytes.size());
      if (r.would_block()) {
        watch_.clear_writable();
        break;
      }
      if (!r.ok()) {
        if (r.err == EINTR) continue;
        return Break(Error::FromErrno(r.err, "write to " + peer_.ToString()));
      }
      sent = static_cast<size_t>(r.rc);
    }
    out_.Consume(sent, done);
  }
  if (!done.empty()) RearmWriteTimer();
  for (DoneHandler& d : done) {
    finished_.push_back([d = std::move(d)]() mutable { d(Status::Ok()); });
  }
}

void ConnectionImpl::BeginHandshake() {
  PendingTls& p = *pending_tls_;
  SSL* ssl = p.role == TlsRole::kServer ? NewServerSsl(p.ctx, fd_.get())
                                        : NewClientSsl(p.ctx, fd_.get(), p.sni);
  if (ssl == nullptr) {
    return Break(Error(
        std::error_code(ENOMEM, std::generic_category()),
        "cannot create a TLS session" + (p.sni.empty() ? std::string() : " for '" + p.sni + "'")));
  }
  tls_ = std::make_unique<TlsStream>(ssl);
  // What the peer sent behind its request for TLS is the start of its
  // handshake, never plaintext.
  if (!in_.empty() && !PrependReadBytes(ssl, in_.TakeAll())) {
    return Break(Error(std::error_code(ENOMEM, std::generic_category()),
                       "cannot hand the buffered bytes to TLS"));
  }
}

void ConnectionImpl::StepHandshake() {
  TlsResult r = tls_->Handshake();
  if (r.would_block()) return;
  if (r.status != TlsIo::kOk) return Break(TlsError(r, "TLS handshake"));
  loop().CancelTimer(tls_timer_.timer);
  DoneHandler done = std::move(pending_tls_->done);
  pending_tls_.reset();
  if (done) finished_.push_back([done = std::move(done)]() mutable { done(Status::Ok()); });
}

void ConnectionImpl::Break(Error error) {
  if (broken_) return;
  broken_ = error;
  loop().CancelTimer(read_timer_.timer);
  loop().CancelTimer(write_timer_.timer);
  loop().CancelTimer(tls_timer_.timer);
  if (read_kind_ != ReadKind::kNone) {
    read_kind_ = ReadKind::kNone;
    finished_.push_back([done = std::move(read_done_), error]() mutable { done(error); });
  }
  for (DoneHandler& d : out_.TakeAll()) {
    finished_.push_back([d = std::move(d), error]() mutable { d(error); });
  }
  if (pending_tls_) {
    if (pending_tls_->done) {
      finished_.push_back([d = std::move(pending_tls_->done), error]() mutable { d(error); });
    }
    pending_tls_.reset();
  }
  loop().ScheduleReady(this);
}

// --- timeouts -------------------------------------------------------------

void ConnectionImpl::Arm(OpTimer& timer) {
  if (timeout_ > Duration::zero()) loop().ArmTimer(timer.timer, timeout_);
}

void ConnectionImpl::RearmWriteTimer() {
  const TimePoint deadline = out_.EarliestDeadline();
  if (deadline == TimePoint::max()) {
    loop().CancelTimer(write_timer_.timer);
  } else if (!write_timer_.timer.armed() || write_timer_.timer.expiry() > deadline) {
    loop().ArmTimer(write_timer_.timer, deadline - loop().now());
  }
}

Error ConnectionImpl::Timeout(const char* what) const {
  return Error(
      std::error_code(ETIMEDOUT, std::generic_category()),
      std::string(what) + " " + peer_.ToString() + " not done within " + Milliseconds(timeout_));
}

void ConnectionImpl::OnReadTimeout() { Break(Timeout("read from")); }

void ConnectionImpl::OnWriteTimeout() {
  if (out_.EarliestDeadline() > loop().now()) return RearmWriteTimer();
  Break(Timeout("write to"));
}

void ConnectionImpl::OnTlsTimeout() { Break(Timeout("TLS handshake with")); }

}  // namespace zrelay
