// UdpEchoBackend: `zrelay-load backend --udp`, a UDP echo server.
//
// Every worker of the pool binds its own UDP socket to the listen address
// with SO_REUSEPORT (the kernel spreads senders over them by address), reads
// datagrams in batches with recvmmsg and sends each back to its sender,
// unchanged, with sendmmsg. While a batch cannot be sent (a full socket
// buffer) the worker stops reading, so the echo never drops what it took
// in; the kernel drops what overflows the receive buffer instead, as for
// any UDP server (the buffers are asked for 4 MiB, within net.core.*_max).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/address.h"
#include "engine/result.h"
#include "engine/worker_pool.h"
#include "tools/load/backend.h"
#include "tools/load/config.h"

namespace zrelay::load {

class UdpEchoBackend {
 public:
  // Binds config.listen on every worker of `pool` (which must outlive the
  // backend); port 0 takes the kernel's port for all of them. Errors name
  // the address.
  static Result<std::unique_ptr<UdpEchoBackend>> Start(WorkerPool& pool, const Config& config);
  ~UdpEchoBackend();  // Stop()
  UdpEchoBackend(const UdpEchoBackend&) = delete;
  UdpEchoBackend& operator=(const UdpEchoBackend&) = delete;

  // Closes every socket (on their workers). Idempotent. Call from a
  // non-worker thread.
  void Stop();

  const Address& local_address() const { return address_; }
  // Any thread: running totals (relaxed; exact once stopped). Sets `udp`,
  // datagrams_*, bytes_* and send_errors.
  BackendTotals Totals() const;

  class Socket;

 private:
  explicit UdpEchoBackend(WorkerPool& pool);

  WorkerPool& pool_;
  Address address_;
  std::vector<std::unique_ptr<Socket>> sockets_;  // one per worker
  bool stopped_ = false;
};

}  // namespace zrelay::load
