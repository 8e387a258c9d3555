// Backend: the serving end of zrelay-load, on the engine's Listener (one
// SO_REUSEPORT socket per worker; a connection lives on the worker that
// accepted it).
//
//   sink    read and discard, count; close on EOF
//   verify  check the bulk stream (header + keyed pattern, pattern.h) byte
//           by byte; on the client's half-close answer with a 32-byte
//           report (bytes checked, mismatches), then close
//   echo    send back what arrives (reading pauses while the peer is slow);
//           close once the client's EOF has been echoed
//   fixed   for every --req bytes read, send --resp bytes
//   source  send a bulk stream (header + pattern, a key per connection)
//           until the client closes; what the client sends is discarded
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/address.h"
#include "engine/listener.h"
#include "engine/result.h"
#include "engine/worker_pool.h"
#include "tools/load/config.h"
#include "tools/load/session.h"

namespace zrelay::load {

struct BackendTotals {
  uint64_t accepted = 0;
  uint64_t active = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t verified = 0;    // verify: streams that ended with no mismatch
  uint64_t mismatches = 0;  // verify: mismatched bytes over all streams
  uint64_t resets = 0;      // connections that ended on a reset or error
  // backend --udp (udp_backend.h): no connections, datagrams.
  bool udp = false;
  uint64_t datagrams_in = 0;
  uint64_t datagrams_out = 0;
  uint64_t send_errors = 0;  // datagrams that could not be sent back (an error, not a full buffer)
};

class Backend : private AcceptHandler {
 public:
  // Listens on config.listen with every worker of `pool` (which must outlive
  // the backend). Errors name the address.
  static Result<std::unique_ptr<Backend>> Start(WorkerPool& pool, const Config& config);
  ~Backend() override;  // Stop()

  // Stops accepting and closes every connection (on their workers).
  // Idempotent. Call from a non-worker thread.
  void Stop();

  const Address& local_address() const { return listener_->local_address(); }
  // Any thread: running totals (relaxed; exact once stopped).
  BackendTotals Totals() const;

  struct WorkerState;
  class Conn;

 private:
  Backend(WorkerPool& pool, const Config& config);
  void OnAccept(size_t worker, UniqueFd fd, const Address& peer) override;

  WorkerPool& pool_;
  const Config config_;
  std::vector<std::unique_ptr<WorkerState>> workers_;
  std::unique_ptr<Listener> listener_;
  bool stopped_ = false;
};

}  // namespace zrelay::load
