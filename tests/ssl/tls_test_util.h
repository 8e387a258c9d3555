// Helpers for TLS tests: loopback TCP pairs, and a poll() loop that drives two
// non-blocking TlsStreams through a handshake or a bulk transfer, always
// under a deadline.
#pragma once

#include <chrono>
#include <string>
#include <utility>

#include "engine/unique_fd.h"
#include "ssl/tls_stream.h"

typedef struct x509_st X509;  // NOLINT

namespace zrelay::testing {

// A connected loopback TCP pair, both ends non-blocking with TCP_NODELAY.
// `client` connected to `server` (the accepted end). Fails the test (and
// returns invalid fds) on error.
struct TcpPair {
  UniqueFd client;
  UniqueFd server;
};
TcpPair MakeTcpPair();

// Blocks (poll) until `fd` is ready for what `r` asked for, or `timeout_ms`.
// Returns false on timeout.
bool WaitFor(int fd, const TlsResult& r, int timeout_ms = 2000);

struct HandshakeResults {
  TlsResult client;
  TlsResult server;
  bool ok() const { return client.ok() && server.ok(); }
};
// Runs both handshakes until each has finished (kOk or a failure) or the
// deadline passes (then the stuck side's last result is kWantRead/Write).
HandshakeResults Handshake(TlsStream& client, int client_fd, TlsStream& server, int server_fd,
                           std::chrono::milliseconds deadline = std::chrono::seconds(5));

// Sends `a_to_b` from a to b and `b_to_a` from b to a at the same time, each
// side sending close_notify once its bytes are out and reading until the
// peer's close_notify. `write_chunk` caps each Write. Returns what each side
// received; `error` describes the first failure (empty on success).
struct TransferResult {
  std::string received_by_a;
  std::string received_by_b;
  std::string error;
};
TransferResult Transfer(TlsStream& a, int a_fd, TlsStream& b, int b_fd, const std::string& a_to_b,
                        const std::string& b_to_a, size_t write_chunk = 256 << 10,
                        std::chrono::milliseconds deadline = std::chrono::seconds(60));

// The peer certificate's subject CN ("" when there is none).
std::string PeerCommonName(const TlsStream& stream);

// Prints a result for assertion messages: "kError errno=104 detail=...".
std::string Describe(const TlsResult& r);

// A loopback port nothing listens on right now (bind port 0, read, close).
int FreeTcpPort();

}  // namespace zrelay::testing
