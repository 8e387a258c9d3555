// ClientHello peek: read the SNI and ALPN a TLS client offers from the first
// bytes of a connection, without OpenSSL and without consuming them, so a
// relay can route by name and still pass the untouched stream to a backend
// (nginx's ssl_preread, HAProxy's req.ssl_sni).
//
//   char buf[4096];
//   ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK);   // bytes stay queued
//   ClientHelloPeek peek = ParseClientHello({buf, n});
//   switch (peek.status) {
//     case PeekStatus::kNeedMore: /* wait for more data (a new edge will come),
//                                    peek again; give up at a deadline */
//     case PeekStatus::kNotTls:   /* route as plain, or refuse: peek.error says why */
//     case PeekStatus::kOk:       /* peek.hello.sni, peek.hello.alpn */
//   }
//
// The parser only reads; it accepts a ClientHello split across several TLS
// records (legal, and used by some clients and by middlebox tests) and
// rejects anything malformed rather than guessing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zrelay {

enum class PeekStatus {
  kNeedMore,  // a prefix of what may be a valid ClientHello: peek again with more
  kNotTls,    // not a TLS ClientHello (or a malformed / oversized one)
  kOk,        // parsed
};
const char* PeekStatusName(PeekStatus status);

struct ClientHelloInfo {
  std::string sni;                // host_name from server_name; empty when absent
  std::vector<std::string> alpn;  // offered protocols, in the client's order
  uint16_t legacy_version = 0;    // ClientHello.legacy_version (0x0303 for TLS 1.2+)
  bool offers_tls13 = false;      // supported_versions lists 0x0304
};

struct ClientHelloPeek {
  PeekStatus status = PeekStatus::kNeedMore;
  ClientHelloInfo hello;  // kOk only
  // kNeedMore: the total number of bytes (from the start) the parser needs at
  // least to make progress; always > the bytes given.
  size_t needed = 0;
  // kNotTls: why, e.g. "first byte 0x47 is not a TLS handshake record".
  std::string error;
};

// Largest ClientHello (handshake message body) accepted. Real ones are
// 200 bytes to a few KiB (post-quantum key shares ~1.8 KiB); bigger claims
// are refused so a peek buffer stays bounded.
inline constexpr size_t kMaxClientHello = 16 * 1024;

// Parses the bytes a connection started with. Never reads past `bytes`.
ClientHelloPeek ParseClientHello(std::string_view bytes);

}  // namespace zrelay
