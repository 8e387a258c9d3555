// A real OpenSSL client's ClientHello, without a socket, for tests that
// parse or route by one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace zrelay::testing {

// The first flight of an OpenSSL client (through a memory BIO): its
// ClientHello record(s), offering `alpn` and naming `sni` (no server_name
// extension when empty). `max_version` caps the version (TLS1_2_VERSION);
// 0: OpenSSL's highest.
std::string CaptureClientHello(const std::vector<std::string>& alpn, std::string_view sni,
                               int max_version = 0);

}  // namespace zrelay::testing
