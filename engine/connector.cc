#include "engine/connector.h"

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "engine/check.h"
#include "engine/socket.h"
#include "engine/uring_ring.h"

namespace zrelay {
namespace {

std::string FormatTimeout(Duration d) {
  const auto ms = std::chrono::duration_cast<milliseconds>(d).count();
  if (ms >= 1000 && ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

}  // namespace

// The connect request on the loop's ring. It holds the address the kernel
// reads, and outlives a Connector that gave up on it meanwhile: the request
// then ends unobserved and the op frees itself.
class Connector::RingConnect final : public UringOwnedOp {
 public:
  RingConnect(UringRing& ring, Connector* owner, const Address& address)
      : UringOwnedOp(ring), owner_(owner), address_(address) {}

  void Issue(int fd) { ring().Connect(op, fd, address_.sockaddr(), address_.length()); }
  void Detach() { owner_ = nullptr; }

 private:
  void Completed(int res, uint32_t /*flags*/) override {
    if (owner_ != nullptr) owner_->OnRingConnect(res);
  }
  bool Finish() override { return true; }

  Connector* owner_;
  const Address address_;
};

Connector::~Connector() { Cancel(); }

void Connector::Start(const Address& address, Duration timeout, FdWatch& watch,
                      ConnectHandler* handler) {
  ZR_CHECK(!in_progress(), "Connector::Start while a connect is in progress");
  address_ = address;
  timeout_ = timeout;
  watch_ = &watch;
  handler_ = handler;
  immediate_error_.reset();

  UringRing* ring = loop_.uring();
  Result<UniqueFd> fd = ring != nullptr ? ConnectSocket(address) : StartConnect(address);
  if (fd) {
    fd_ = std::move(fd).value();
    if (ring != nullptr) {
      ring_connect_ = new RingConnect(*ring, this, address);  // frees itself
      ring_connect_->Issue(fd_.get());
    }
    Status registered = watch.Register(loop_, fd_.get(), this);
    if (registered) {
      loop_.ArmTimer(timer_, timeout);
      return;
    }
    immediate_error_ = Error(registered.error().code(), "connect to " + address.ToString() + ": " +
                                                            registered.error().message());
    DropSocket();
  } else {
    // StartConnect's message names the step that failed: "connect to
    // 10.0.0.1:80: socket: Too many open files" tells fd exhaustion apart
    // from a refused or unreachable backend.
    immediate_error_ = fd.error();
  }
  // Report from the loop, never from inside Start(): a negative delay fires
  // on the loop's next timer pass.
  loop_.ArmTimer(timer_, Duration(-1));
}

void Connector::Cancel() {
  if (handler_ == nullptr) return;
  loop_.CancelTimer(timer_);
  if (watch_ != nullptr && watch_->registered() && watch_->fd() == fd_.get()) {
    watch_->UnregisterForClose();
  }
  DropSocket();
  watch_ = nullptr;
  handler_ = nullptr;
  immediate_error_.reset();
}

void Connector::OnFdEvent(FdWatch& watch, uint32_t) {
  // After success the watch may still point here until the new owner calls
  // set_handler(); those events (and stale ones) are not ours.
  if (handler_ == nullptr || &watch != watch_) return;
  if (ring_connect_ != nullptr) return;             // the ring's completion tells the outcome
  if (!watch.writable() && !watch.error()) return;  // not finished yet
  Completed(SocketError(fd_.get()));
}

void Connector::OnRingConnect(int res) {
  ring_connect_ = nullptr;  // it frees itself after this call
  Completed(-res);
}

void Connector::Completed(int err) {
  loop_.CancelTimer(timer_);
  if (err == 0) {
    Finish(std::move(fd_));
    return;
  }
  watch_->UnregisterForClose();
  DropSocket();
  Finish(Error::FromErrno(err, "connect to " + address_.ToString()));
}

void Connector::DropSocket() {
  if (ring_connect_ != nullptr) {
    ring_connect_->Detach();
    ring_connect_->ring().Cancel(ring_connect_->op);
    ring_connect_ = nullptr;
  }
  loop_.CloseFd(std::move(fd_));
}

void Connector::OnTimer(Timer&) {
  if (handler_ == nullptr) return;
  if (immediate_error_) {
    Error error = std::move(*immediate_error_);
    immediate_error_.reset();
    Finish(std::move(error));
    return;
  }
  watch_->UnregisterForClose();
  DropSocket();
  Finish(
      Error(std::make_error_code(std::errc::timed_out),
            "connect to " + address_.ToString() + " timed out after " + FormatTimeout(timeout_)));
}

void Connector::Finish(Result<UniqueFd> result) {
  ConnectHandler* handler = std::exchange(handler_, nullptr);
  watch_ = nullptr;
  immediate_error_.reset();
  // Last touch of `this`: the handler may destroy the connector.
  handler->OnConnect(std::move(result));
}

}  // namespace zrelay
