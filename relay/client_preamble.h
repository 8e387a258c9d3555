// ClientPreamble: what a listener reads from a client before it picks and
// connects a backend. Two parts, each optional, in this order:
//
//   1. a PROXY protocol header (ListenOptions::proxy_protocol): peeked,
//      parsed, then consumed to its exact length, so the stream that is
//      relayed starts with the client's own first byte;
//   2. the TLS ClientHello (route_by kSni): peeked only, never consumed, so
//      the backend gets the TLS stream untouched.
//
// The client socket is edge-triggered (engine/event_loop.h): a peek that
// saw every queued byte and still needs more waits for the next EPOLLIN
// edge, which only new bytes bring. Pair drives it from its fd events and
// bounds it with ListenOptions::preamble_timeout.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "engine/address.h"
#include "engine/clock.h"
#include "engine/event_loop.h"
#include "relay/proxy_protocol.h"
#include "relay/relay.h"

namespace zrelay {

struct PreambleOptions {
  bool proxy_protocol = false;     // read a PROXY header first
  bool peek_client_hello = false;  // then peek the ClientHello's server name
  Duration timeout{};              // for both together
  bool any() const { return proxy_protocol || peek_client_hello; }
};

class ClientPreamble {
 public:
  enum class Progress { kWaiting, kDone, kFailed };

  explicit ClientPreamble(const PreambleOptions& options);

  // Reads what the client at `watch` sent so far. kWaiting: call again on
  // its next fd event. kFailed: close the client with failure().
  Progress Advance(FdWatch& watch);

  // kDone: the PROXY header read (when the listener asked for one), and the
  // server name the ClientHello asked for (empty without one, or without
  // route_by).
  const std::optional<ProxyHeader>& proxy_header() const { return proxy_header_; }
  const std::string& server_name() const { return server_name_; }

  struct Failure {
    CloseCause cause = CloseCause::kError;
    int err = 0;
    std::string detail;
  };
  const Failure& failure() const { return failure_; }
  // What it is still waiting for ("PROXY header", "TLS ClientHello"), for a
  // timeout's detail.
  const char* waiting_for() const;

 private:
  enum class Stage { kProxyHeader, kClientHello, kDone };
  struct Peeked {
    Progress progress = Progress::kDone;  // kDone: `bytes` are there
    size_t bytes = 0;
  };

  Progress ReadProxyHeader(FdWatch& watch);
  Progress PeekClientHello(FdWatch& watch);
  // recv(MSG_PEEK) of up to `cap` bytes into the worker's peek buffer.
  Peeked Peek(FdWatch& watch, size_t cap);
  // The client's bytes so far are a prefix that needs more: wait for more,
  // or fail when no more can come (FIN) or they could not fit `cap`.
  Progress NeedMore(FdWatch& watch, size_t have, size_t needed, size_t cap);
  Progress Fail(CloseCause cause, int err, std::string detail);

  Stage stage_;
  const bool peek_client_hello_;
  std::optional<ProxyHeader> proxy_header_;
  std::string server_name_;
  Failure failure_;
};

}  // namespace zrelay
