// How a Connection ends: dropped (ConnectionDeleter), handed to a pair
// (TakeLeg), or closed with its worker (Orphan).
#include <algorithm>
#include <cerrno>
#include <utility>

#include "relay/connection_impl.h"
#include "relay/worker.h"

namespace zrelay {
namespace {

// Bytes asked of OpenSSL per read while draining it for a pair.
constexpr size_t kDrainChunk = 16 << 10;

}  // namespace

void ConnectionDeleter::operator()(Connection* connection) const {
  static_cast<ConnectionImpl*>(connection)->Destroy();
}

std::string ConnectionImpl::Busy() const {
  if (read_kind_ != ReadKind::kNone) return "a read is pending";
  if (!out_.empty()) return std::to_string(out_.size()) + " writes are not out yet";
  if (pending_tls_) return "StartTls is running";
  if (!connecting_.empty()) return "a Connect is pending";
  return {};
}

Leg ConnectionImpl::TakeLeg(ListenerTie& tie) {
  Leg leg;
  if (tls_) {
    // Everything OpenSSL can decrypt now (from the socket, or bytes sent
    // behind a STARTTLS request still in its read BIO) becomes preread: the
    // pair's first read waits for a socket edge, which such bytes never bring.
    for (;;) {
      char* at = in_.Reserve(kDrainChunk);
      TlsResult r = tls_->Read(at, kDrainChunk);
      in_.Commit(r.ok() ? r.bytes : 0);
      if (!r.ok()) break;
    }
    leg.ssl = tls_->Release();
    tls_.reset();
  }
  leg.preread = in_.TakeAll();
  watch_.Unregister();  // before the fd moves on: the pair registers it anew
  leg.fd = std::move(fd_);
  tie = std::move(tie_);
  tie_ = {};
  Close();
  return leg;
}

void ConnectionImpl::Destroy() {
  if (destroyed_) return;
  destroyed_ = true;
  Close();
  if (orphaned_) {
    delete this;  // the worker, and its loop's turn, are gone
    return;
  }
  loop().DeferDelete(std::unique_ptr<Deferrable>(this));
}

void ConnectionImpl::Orphan() {
  orphaned_ = true;
  tie_ = {};
  Close();
}

void ConnectionImpl::Drain() {
  drained_ = true;
  Close();
}

CloseCause ConnectionImpl::EndCause() const {
  if (drained_) return CloseCause::kDrained;
  if (!broken_) return CloseCause::kDone;
  const int code = broken_->code().value();
  if (code == ETIMEDOUT) return CloseCause::kTimeout;
  if (code == ECONNRESET || code == EPIPE || code == ECONNABORTED) return CloseCause::kReset;
  return CloseCause::kError;
}

void ConnectionImpl::Close() {
  if (closed_) return;
  closed_ = true;
  worker_.RemoveConnection(this);
  EventLoop& l = loop();
  l.UnscheduleReady(this);
  l.CancelTimer(read_timer_.timer);
  l.CancelTimer(write_timer_.timer);
  l.CancelTimer(tls_timer_.timer);
  // Handlers and children die after our own state is settled: dropping one
  // may drop ConnectionPtrs (this one's included, which finds it closed).
  std::vector<ConnectionImpl*> children = std::move(connecting_);
  connecting_.clear();
  connector_.reset();  // cancels a connect in progress
  std::list<AfterTimer> after = std::move(after_);
  after_.clear();
  ReadHandler read_done = std::move(read_done_);
  std::vector<DoneHandler> writes = out_.TakeAll();
  std::optional<PendingTls> tls_pending = std::move(pending_tls_);
  pending_tls_.reset();
  ConnectionHandler connect_done = std::move(connect_done_);
  std::vector<UniqueFunction<void()>> finished = std::move(finished_);
  finished_.clear();
  tls_.reset();
  if (watch_.registered()) watch_.Unregister();
  fd_.Reset();
  if (origin_ != nullptr) {
    auto& siblings = origin_->connecting_;
    siblings.erase(std::remove(siblings.begin(), siblings.end(), this), siblings.end());
    origin_ = nullptr;
  }
  ListenerTie tie = std::move(tie_);
  tie_ = {};
  if (tie.counters != nullptr) tie.counters->closed[static_cast<size_t>(EndCause())].Add();
  for (ConnectionImpl* child : children) {
    child->origin_ = nullptr;
    ConnectionPtr drop(child);
  }
  if (tie.release) tie.release();
}

}  // namespace zrelay
