// TLS contexts: build an SSL_CTX from a config, with errors that name the
// file or value at fault, and make per-connection SSL objects from it.
//
//   TlsServerConfig config;
//   config.certs = {{"/etc/zrelay/site.pem", "/etc/zrelay/site.key"}};
//   config.alpn = {"h2", "http/1.1"};
//   auto ctx = BuildServerContext(config);
//   if (!ctx.ok()) return ctx.error();   // "certificate file '/etc/...': ..."
//   SSL* ssl = NewServerSsl(*ctx, fd);   // hand to TlsStream or a relay Leg
//
// Everything a context needs at run time (the SNI certificate map, the ALPN
// list, the client's default SNI and host name) hangs off the SSL_CTX itself
// (ex_data), so a raw SSL_CTX* taken with get() and handed around (relay's
// ListenOptions::tls) works exactly like the TlsContext, and stays valid as
// long as anyone holds a reference to it (SSL_CTX_up_ref; every SSL holds one).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/result.h"

typedef struct ssl_st SSL;          // NOLINT: OpenSSL's own forward declarations
typedef struct ssl_ctx_st SSL_CTX;  // NOLINT

namespace zrelay {

struct TlsServerConfig {
  struct CertKey {
    std::string cert_file;  // PEM: the leaf certificate, then its chain
    std::string key_file;   // PEM, unencrypted
  };
  // certs[0] is the default. The others are chosen by the SNI the client
  // sends, matched against each certificate's names: its SAN DNS entries
  // (wildcards "*.example.com" match exactly one label), else its CN. An
  // exact name beats a wildcard; among equals, the earlier certificate wins.
  std::vector<CertKey> certs;
  // Protocols in server preference order. A client that offers none of them
  // gets no ALPN (the handshake still succeeds), as HAProxy does.
  std::vector<std::string> alpn;
  std::string client_ca_file;  // non-empty: require and verify client certificates
  int verify_depth = 9;
  std::string min_version = "TLS1.2";  // "TLS1.2" or "TLS1.3"
  std::string ciphers;       // TLS 1.2 cipher list (OpenSSL syntax); empty: default
  std::string ciphersuites;  // TLS 1.3 suites, ':'-separated; empty: default
};

struct TlsClientConfig {
  bool verify = true;   // verify the server's chain and name
  std::string ca_file;  // both empty: the system trust store
  std::string ca_dir;
  int verify_depth = 9;
  // The name checked against the server certificate; empty: `sni`. An IP
  // literal is checked against the certificate's IP SANs. With verify = true
  // and neither this, `sni` nor a per-connection name, only the chain is
  // verified: any certificate from a trusted CA is accepted.
  std::string verify_hostname;
  std::string sni;                // server name sent; per-connection override in NewClientSsl
  std::vector<std::string> alpn;  // protocols offered, in preference order
  std::string cert_file;          // optional client certificate (both or neither)
  std::string key_file;
  std::string min_version = "TLS1.2";
  std::string ciphers;
  std::string ciphersuites;
};

// Sole owner of one reference to an SSL_CTX (and, through it, of the SNI
// map's extra contexts, freed with it). Move-only.
class TlsContext {
 public:
  TlsContext() = default;
  // Adopts one reference to `ctx`.
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  // Takes a reference of its own to `ctx` (SSL_CTX_up_ref), for a holder
  // that must keep a context its creator may free first; null: empty.
  static TlsContext Share(SSL_CTX* ctx);
  TlsContext(TlsContext&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}
  TlsContext& operator=(TlsContext&& other) noexcept;
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  ~TlsContext();

  // The context, still owned here. Callers that keep it past this object's
  // life take their own reference with SSL_CTX_up_ref.
  SSL_CTX* get() const { return ctx_; }
  explicit operator bool() const { return ctx_ != nullptr; }
  // Number of certificates the server context chooses from by SNI
  // (1 for a single certificate, 0 for a client context).
  size_t server_cert_count() const;

 private:
  SSL_CTX* ctx_ = nullptr;
};

// Builds a server context. Errors name what is wrong, e.g.
//   certificate file '/x/y.pem': No such file or directory
//   key '/k.pem' does not match certificate '/c.pem'
//   unknown TLS version 'TLS1.9' (use TLS1.2 or TLS1.3)
//   unknown TLS 1.3 ciphersuite 'TLS_FOO' in 'TLS_FOO:TLS_AES_128_GCM_SHA256'
//   ALPN protocol #2 is empty
Result<TlsContext> BuildServerContext(const TlsServerConfig& config);
Result<TlsContext> BuildClientContext(const TlsClientConfig& config);

// Makes the SSL for one accepted connection on `fd` (server side, accept
// state). The fd stays owned by the caller: SSL_free does not close it.
// Returns nullptr only when OpenSSL cannot allocate (the error queue is
// cleared either way).
SSL* NewServerSsl(const TlsContext& ctx, int fd);
SSL* NewServerSsl(SSL_CTX* ctx, int fd);

// Makes the SSL for one outgoing connection on `fd` (client side, connect
// state). `sni` non-empty overrides the config for this connection: it is
// both sent as SNI and checked against the server's certificate. Otherwise
// the config's `sni` is sent and `verify_hostname` (else `sni`) is checked.
// IP literals are never sent as SNI (RFC 6066) but are checked against the
// certificate's IP SANs. The context remembers the newest session a server
// issued and offers it to the next connection for the same name, so
// repeated connections to one backend resume instead of doing full
// handshakes. Returns nullptr when OpenSSL cannot allocate or the name is
// unusable (longer than 255 bytes, or with a NUL byte).
SSL* NewClientSsl(const TlsContext& ctx, int fd, std::string_view sni = {});
SSL* NewClientSsl(SSL_CTX* ctx, int fd, std::string_view sni = {});

// Parses "TLS1.2" / "TLSv1.2" / "TLS1.3" / "TLSv1.3" into OpenSSL's version
// number (TLS1_2_VERSION...). Exposed for the daemon's config checks.
Result<int> ParseTlsVersion(std::string_view text);

}  // namespace zrelay
