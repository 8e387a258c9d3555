// Exchange: one request/response round on a transport, the unit of rr,
// connect and idle: send `req` bytes, then read exactly `resp` bytes.
#pragma once

#include <cstdint>
#include <string>

#include "tools/load/session.h"
#include "tools/load/transport.h"

namespace zrelay::load {

class Exchange {
 public:
  enum class Step {
    kBlocked,  // waiting for readiness; call Run() again on the next event
    kDone,     // the whole response arrived
    kFailed,   // see failure(): an I/O error, an early EOF or extra bytes
  };

  void Begin(uint64_t req, uint64_t resp);
  // Moves bytes until the exchange is blocked, done or failed. Reads go to
  // the session's scratch buffer. Counts bytes in `counters`.
  Step Run(Transport& io, ClientSession& session);

  // After kFailed: the I/O result to report (kError or kEof) and a detail
  // for protocol errors (more bytes than --resp).
  const IoResult& failure() const { return failure_; }
  bool receiving() const { return sent_ == req_; }

 private:
  uint64_t req_ = 0;
  uint64_t resp_ = 0;
  uint64_t sent_ = 0;
  uint64_t got_ = 0;
  IoResult failure_;
};

// 64 KiB of request filler: what rr/connect/idle send (its content does not
// matter to a fixed or echo backend).
const uint8_t* Filler();
inline constexpr size_t kFillerSize = 64 << 10;

}  // namespace zrelay::load
