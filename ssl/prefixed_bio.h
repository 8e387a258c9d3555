// Bytes a TLS peer sent before the TLS layer existed.
//
// A STARTTLS server reads the client's "STARTTLS" line from the socket
// itself, and the client's ClientHello may arrive in the same segment, so it
// already sits in the server's read buffer when the TLS layer is set up.
// Those bytes are the start of the handshake: OpenSSL must read them first,
// before anything from the socket, and they must never be taken for
// plaintext.
#pragma once

#include <string>

typedef struct ssl_st SSL;  // NOLINT: OpenSSL's own forward declaration

namespace zrelay {

// Makes `ssl` read `bytes` before anything from its read BIO (the socket
// SSL_set_fd gave it). The bytes sit in a filter BIO in front of the socket
// BIO: reads take from them first, then pass through to the socket with its
// retry flags (non-blocking EAGAIN stays SSL_ERROR_WANT_READ); writes go
// straight to the socket. SSL_get_fd still finds the socket. The SSL keeps
// this arrangement for its whole life, also when it is handed to a relay
// pair. Empty `bytes`: nothing changes. Returns false when OpenSSL cannot
// allocate (the SSL is then unchanged).
bool PrependReadBytes(SSL* ssl, std::string bytes);

}  // namespace zrelay
