// UringBufferedOp: one send or receive through the loop's ring with a buffer
// of its own, for an owner that may be destroyed first (a pair that closes
// with the request still queued or in flight). The request then finishes
// (or fails) on its own and the op frees itself with its buffer, so the
// kernel never writes into, or reads from, memory that was given back.
// The buffer is a reused UringBuffer (engine/uring_buffer.h). Used by
// UringSender and UringReceiver.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/check.h"
#include "engine/uring_buffer.h"
#include "engine/uring_ring.h"

namespace zrelay {

// `Owner` has Done(int res, UringBufferedOp<Owner>& op), called at the
// request's completion while the owner still waits for it.
template <typename Owner>
class UringBufferedOp final : public UringOwnedOp {
 public:
  // `len`: the request's bytes, at most kUringBufferBytes.
  UringBufferedOp(UringRing& ring, Owner* owner, size_t len)
      : UringOwnedOp(ring), owner_(owner), len_(len), bytes_(TakeUringBuffer()) {
    ZR_CHECK(len <= kUringBufferBytes, "a ring request of %zu bytes", len);
  }

  char* bytes() { return bytes_.get(); }
  size_t len() const { return len_; }
  // Hands the buffer to the owner (from Done: the op dies right after).
  UringBuffer TakeBytes() { return std::move(bytes_); }
  // The owner is going: the request ends unobserved.
  void Detach() { owner_ = nullptr; }

 private:
  void Completed(int res, uint32_t /*flags*/) override {
    if (owner_ != nullptr) owner_->Done(res, *this);
  }
  bool Finish() override { return true; }

  Owner* owner_;
  size_t len_;
  UringBuffer bytes_;
};

}  // namespace zrelay
