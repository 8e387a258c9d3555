// What a [[listener]] with protocol = "udp" may say.
//
// A UDP listener relays datagrams, one flow per client address (relay.h,
// ListenOptions with Protocol::kUdp). The keys about streams (TLS, PROXY
// headers, SNI routes, the accept backlog, the connect and handshake
// timeouts) have nothing to act on there, so each is an error naming its key
// and line, never a setting that silently does nothing:
//
//   zrelayd.toml:9: listener[1].tls_cert: not with protocol = "udp": a UDP
//   listener relays datagrams as they come (no TLS, no DTLS)
#pragma once

#include <cstdint>
#include <string_view>

#include "engine/result.h"
#include "relay/relay.h"
#include "tools/config/toml_reader.h"

namespace zrelay {

// The largest udp_receive_buffer / udp_send_buffer: SO_RCVBUF and SO_SNDBUF
// take an int, which the kernel doubles.
inline constexpr uint64_t kMaxUdpBuffer = uint64_t{1} << 30;
// The most udp_responses: answers per request, far more than any protocol
// sends.
inline constexpr int64_t kMaxUdpResponses = 1000;

// protocol = "tcp" or "udp".
Result<Protocol> ParseProtocol(std::string_view text);

// Keeps an error for the key of a UDP [[listener]] table that is first in
// the file among those a UDP listener refuses. Call it before the keys are
// read, so that this error, not one about how the key is written, is the
// one kept.
void RefuseStreamKeys(TableReader& listener);

// The same for a UDP listener's [[listener.backend]] table (send_proxy).
void RefuseStreamBackendKeys(TableReader& backend);

// udp_receive_buffer, udp_send_buffer and udp_responses into *options; on
// a TCP listener (`udp` false) each one is an error.
void ReadUdpSettings(TableReader& listener, bool udp, UdpOptions* options);

}  // namespace zrelay
