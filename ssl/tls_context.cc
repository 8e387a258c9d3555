#include "ssl/tls_context.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "ssl/cert_names.h"
#include "ssl/openssl_errors.h"

namespace zrelay {
namespace {

// What a context needs at run time, attached to the SSL_CTX as ex_data and
// deleted by OpenSSL when the context's last reference goes.
struct CtxExtras {
  // Server: the ALPN list in wire format (length-prefixed), this context's.
  std::string alpn_wire;

  // Server, default context only: the contexts chosen by SNI. sni_ctxs[0] is
  // null (the default context itself); the others are owned here.
  std::vector<SSL_CTX*> sni_ctxs;
  CertNames names;  // which of sni_ctxs claims a name

  // Client: per-context defaults for NewClientSsl.
  bool is_client = false;
  bool verify = false;
  std::string sni;
  std::string verify_hostname;

  // Client: the newest session a server handed us, and the server name it
  // was made for. The next connection to that name offers it, so a relay
  // originating TLS to one backend resumes instead of redoing the full
  // handshake (certificate chain, signature checks) every time, as HAProxy
  // does with its per-server session slot. Workers share the context, so
  // the slot is locked; it is touched once per connection, never per byte.
  std::mutex session_mu;
  SSL_SESSION* session = nullptr;  // guarded by session_mu
  std::string session_name;        // guarded by session_mu

  ~CtxExtras() {
    for (SSL_CTX* ctx : sni_ctxs) SSL_CTX_free(ctx);  // null-safe
    SSL_SESSION_free(session);                        // null-safe
  }
};

void FreeExtras(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
                void* /*argp*/) {
  delete static_cast<CtxExtras*>(ptr);
}

int ExtrasIndex() {
  // Thread-safe one-time registration (C++ static init).
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeExtras);
  return index;
}

CtxExtras* GetExtras(const SSL_CTX* ctx) {
  return static_cast<CtxExtras*>(SSL_CTX_get_ex_data(ctx, ExtrasIndex()));
}

// A fresh CtxExtras owned by `ctx` from here on; nullptr on failure.
CtxExtras* AttachExtras(SSL_CTX* ctx) {
  auto extras = std::make_unique<CtxExtras>();
  if (SSL_CTX_set_ex_data(ctx, ExtrasIndex(), extras.get()) != 1) return nullptr;
  return extras.release();
}

// OpenSSL hands a client every new session (TLS 1.3: each ticket) here.
// Returns 1: we keep the reference.
int OnNewClientSession(SSL* ssl, SSL_SESSION* session) {
  CtxExtras* extras = GetExtras(SSL_get_SSL_CTX(ssl));
  if (extras == nullptr) return 0;
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  std::lock_guard<std::mutex> lock(extras->session_mu);
  SSL_SESSION_free(extras->session);
  extras->session = session;
  extras->session_name = name != nullptr ? name : "";
  return 1;
}

// Offers the context's last session to `ssl` when it was made for `name`.
void OfferLastSession(CtxExtras& extras, SSL* ssl, const std::string& name) {
  std::lock_guard<std::mutex> lock(extras.session_mu);
  if (extras.session != nullptr && extras.session_name == name &&
      SSL_SESSION_is_resumable(extras.session)) {
    SSL_set_session(ssl, extras.session);  // takes its own reference
  }
}

struct CtxFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};

// An Error whose message is `what`, followed by OpenSSL's reasons if any.
Error SslError(std::string what) {
  const std::string reasons = TakeOpenSslErrors();
  if (!reasons.empty()) what += " (" + reasons + ")";
  return Error::Invalid(std::move(what));
}

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

// Checks that `path` names a readable regular file, so a missing file is
// reported with its errno ("No such file or directory") rather than as an
// OpenSSL "system lib" code.
Status CheckReadableFile(const std::string& what, const std::string& path) {
  const std::string name = what + " " + Quote(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::FromErrno(errno, name);
  struct stat st;
  const int rc = ::fstat(fd, &st);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return Error::FromErrno(err, name);
  if (!S_ISREG(st.st_mode)) return Error::Invalid(name + ": not a regular file");
  return Status::Ok();
}

Status CheckDirectory(const std::string& what, const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Error::FromErrno(errno, what + " " + Quote(path));
  if (!S_ISDIR(st.st_mode)) return Error::Invalid(what + " " + Quote(path) + ": not a directory");
  return Status::Ok();
}

// Never prompt on a terminal for a key's passphrase: a daemon must fail.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return -1; }

// ALPN list -> wire format ("\x02h2\x08http/1.1").
Result<std::string> AlpnWire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (size_t i = 0; i < protocols.size(); ++i) {
    const std::string& p = protocols[i];
    const std::string which = "ALPN protocol #" + std::to_string(i + 1);
    if (p.empty()) return Error::Invalid(which + " is empty");
    if (p.size() > 255) {
      return Error::Invalid(which + " " + Quote(p.substr(0, 32) + "...") + " is " +
                            std::to_string(p.size()) + " bytes (at most 255)");
    }
    wire += static_cast<char>(p.size());
    wire += p;
  }
  return wire;
}

std::vector<std::string> SplitColons(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(':', start), s.size());
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Settings every context shares (server and client).
Status ConfigureCommon(SSL_CTX* ctx, const std::string& min_version, const std::string& ciphers,
                       const std::string& ciphersuites) {
  auto version = ParseTlsVersion(min_version);
  if (!version.ok()) return version.error();
  if (SSL_CTX_set_min_proto_version(ctx, version.value()) != 1) {
    return SslError("cannot set minimum TLS version " + Quote(min_version));
  }

  // PARTIAL_WRITE: SSL_write returns after each record it sent, like write(2),
  //   instead of holding the caller until all of a large buffer went out.
  // ACCEPT_MOVING_WRITE_BUFFER: a retried write may pass the same bytes from
  //   another address (a ring buffer that was compacted or reallocated).
  // RELEASE_BUFFERS: OpenSSL frees its ~17 KiB read and write record buffers
  //   whenever they are empty. A relay holds thousands of mostly idle TLS
  //   pairs; without it each one pins ~34 KiB for its whole life. The cost is
  //   a malloc/free per burst, which glibc's caches absorb.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);

  // Renegotiation (TLS 1.2) lets a peer make SSL_write need a read at any
  // time and is a CPU-exhaustion vector; nothing a relay carries needs it.
  // NOT set: SSL_OP_IGNORE_UNEXPECTED_EOF. With it OpenSSL reports an EOF
  // without close_notify exactly like a close_notify (SSL_ERROR_ZERO_RETURN),
  // so a peer cut off mid-stream would look like a clean end and a truncated
  // response would be relayed as complete. We want TlsStream to report
  // kTruncated and let the relay decide; see tls_stream.h.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);

  if (!ciphers.empty() && SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
    return SslError("unknown cipher list " + Quote(ciphers) + ": no TLS 1.2 cipher matched");
  }
  if (!ciphersuites.empty()) {
    if (SSL_CTX_set_ciphersuites(ctx, ciphersuites.c_str()) != 1) {
      return SslError("unknown TLS 1.3 ciphersuites " + Quote(ciphersuites));
    }
    // OpenSSL 3 skips names it does not know; a typo would silently drop a
    // suite, so check that each one made it into the context.
    std::unordered_set<std::string> known;
    STACK_OF(SSL_CIPHER)* list = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(list); ++i) {
      const SSL_CIPHER* c = sk_SSL_CIPHER_value(list, i);
      if (std::string_view(SSL_CIPHER_get_version(c)) == "TLSv1.3")
        known.insert(SSL_CIPHER_get_name(c));
    }
    for (const std::string& name : SplitColons(ciphersuites)) {
      if (known.count(name) == 0) {
        ERR_clear_error();
        return Error::Invalid("unknown TLS 1.3 ciphersuite " + Quote(name) + " in " +
                              Quote(ciphersuites));
      }
    }
  }
  return Status::Ok();
}

// Loads a certificate chain and its key into `ctx`, checking they match.
Status LoadCertAndKey(SSL_CTX* ctx, const std::string& cert_file, const std::string& key_file,
                      const char* cert_what) {
  if (Status s = CheckReadableFile(std::string(cert_what) + " file", cert_file); !s.ok()) return s;
  if (Status s = CheckReadableFile("key file", key_file); !s.ok()) return s;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    return SslError(std::string(cert_what) + " file " + Quote(cert_file) +
                    ": no PEM certificate could be loaded");
  }
  std::unique_ptr<BIO, BioFree> bio(BIO_new_file(key_file.c_str(), "r"));
  if (!bio) return SslError("key file " + Quote(key_file) + ": cannot open");
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) {
    return SslError("key file " + Quote(key_file) +
                    ": no PEM private key could be loaded (encrypted keys are not supported)");
  }
  // Compare before installing: SSL_CTX_use_PrivateKey only checks a key of the
  // certificate's own type, and its message ("key values mismatch") names
  // neither file.
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (cert == nullptr || X509_check_private_key(cert, key.get()) != 1) {
    ERR_clear_error();
    return Error::Invalid("key " + Quote(key_file) + " does not match certificate " +
                          Quote(cert_file));
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return SslError("key " + Quote(key_file) + " does not match certificate " + Quote(cert_file));
  }
  return Status::Ok();
}

// SNI: switch the connection to the context whose certificate claims the
// name. Runs during ClientHello processing, before the certificate is sent.
// The contexts are built from one config, so switching changes only the
// certificate and key (SSL_set_SSL_CTX keeps the SSL's options and verify
// mode, and later callbacks such as ALPN read the new context's settings).
int OnServerName(SSL* ssl, int* /*alert*/, void* arg) {
  const auto* extras = static_cast<const CtxExtras*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_NOACK;
  const long index = extras->names.Find(name);
  if (index < 0) return SSL_TLSEXT_ERR_NOACK;  // unknown name: default certificate
  if (index > 0 && SSL_set_SSL_CTX(ssl, extras->sni_ctxs[index]) == nullptr) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

// ALPN: the first protocol in our list the client also offers.
int OnAlpnSelect(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                 const unsigned char* in, unsigned int inlen, void* arg) {
  const auto* extras = static_cast<const CtxExtras*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen,
                            reinterpret_cast<const unsigned char*>(extras->alpn_wire.data()),
                            static_cast<unsigned int>(extras->alpn_wire.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

Status CheckDepth(int depth) {
  if (depth < 0 || depth > 100) {
    return Error::Invalid("verify_depth " + std::to_string(depth) + " out of range (0..100)");
  }
  return Status::Ok();
}

// One server context for certs[index]: every setting but the SNI callback.
Result<CtxPtr> BuildOneServerContext(const TlsServerConfig& config, size_t index,
                                     const std::string& alpn_wire) {
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return SslError("cannot create a TLS server context");
  CtxExtras* extras = AttachExtras(ctx.get());
  if (extras == nullptr) return SslError("cannot attach data to a TLS server context");
  extras->alpn_wire = alpn_wire;

  if (Status s =
          ConfigureCommon(ctx.get(), config.min_version, config.ciphers, config.ciphersuites);
      !s.ok()) {
    return s.error();
  }
  SSL_CTX_set_options(ctx.get(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Session resumption refuses to work without an id context once client
  // certificates are verified; one fixed id is right for all our contexts.
  static const unsigned char kSessionId[] = "zrelay";
  SSL_CTX_set_session_id_context(ctx.get(), kSessionId, sizeof kSessionId - 1);

  const auto& ck = config.certs[index];
  if (Status s = LoadCertAndKey(ctx.get(), ck.cert_file, ck.key_file, "certificate"); !s.ok()) {
    return s.error();
  }
  if (!alpn_wire.empty()) SSL_CTX_set_alpn_select_cb(ctx.get(), OnAlpnSelect, extras);

  if (!config.client_ca_file.empty()) {
    const std::string& ca = config.client_ca_file;
    if (Status s = CheckReadableFile("client CA file", ca); !s.ok()) return s.error();
    if (SSL_CTX_load_verify_locations(ctx.get(), ca.c_str(), nullptr) != 1) {
      return SslError("client CA file " + Quote(ca) + ": no PEM certificate could be loaded");
    }
    // The CA names sent in CertificateRequest, so clients pick the right cert.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca.c_str());
    if (names == nullptr) {
      return SslError("client CA file " + Quote(ca) + ": no PEM certificate could be loaded");
    }
    SSL_CTX_set_client_CA_list(ctx.get(), names);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_verify_depth(ctx.get(), config.verify_depth);
  }
  ERR_clear_error();
  return ctx;
}

// Puts `name` on `ssl` as the identity to verify: a DNS name or an IP.
bool SetVerifyName(SSL* ssl, const std::string& name) {
  unsigned char addr[16];
  if (inet_pton(AF_INET, name.c_str(), addr) == 1 || inet_pton(AF_INET6, name.c_str(), addr) == 1) {
    return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
  }
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return SSL_set1_host(ssl, name.c_str()) == 1;
}

bool IsIpLiteral(const std::string& name) {
  unsigned char addr[16];
  return inet_pton(AF_INET, name.c_str(), addr) == 1 ||
         inet_pton(AF_INET6, name.c_str(), addr) == 1;
}

}  // namespace

TlsContext& TlsContext::operator=(TlsContext&& other) noexcept {
  if (this != &other) {
    SSL_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
  }
  return *this;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsContext TlsContext::Share(SSL_CTX* ctx) {
  if (ctx != nullptr) SSL_CTX_up_ref(ctx);
  return TlsContext(ctx);
}

size_t TlsContext::server_cert_count() const {
  if (ctx_ == nullptr) return 0;
  const CtxExtras* extras = GetExtras(ctx_);
  if (extras == nullptr || extras->is_client) return 0;
  return extras->sni_ctxs.empty() ? 1 : extras->sni_ctxs.size();
}

Result<int> ParseTlsVersion(std::string_view text) {
  if (text == "TLS1.2" || text == "TLSv1.2") return TLS1_2_VERSION;
  if (text == "TLS1.3" || text == "TLSv1.3") return TLS1_3_VERSION;
  return Error::Invalid("unknown TLS version " + Quote(text) + " (use TLS1.2 or TLS1.3)");
}

Result<TlsContext> BuildServerContext(const TlsServerConfig& config) {
  ERR_clear_error();
  if (config.certs.empty()) return Error::Invalid("TLS server: no certificate configured");
  for (size_t i = 0; i < config.certs.size(); ++i) {
    if (config.certs[i].cert_file.empty() || config.certs[i].key_file.empty()) {
      return Error::Invalid("TLS server: certificate #" + std::to_string(i + 1) +
                            " needs both cert_file and key_file");
    }
  }
  if (Status s = CheckDepth(config.verify_depth); !s.ok()) return s.error();
  auto alpn = AlpnWire(config.alpn);
  if (!alpn.ok()) return alpn.error();

  auto main = BuildOneServerContext(config, 0, alpn.value());
  if (!main.ok()) return main.error();
  TlsContext result(main.value().release());
  if (config.certs.size() == 1) return result;

  CtxExtras* extras = GetExtras(result.get());
  extras->sni_ctxs.push_back(nullptr);  // index 0: the default context itself
  extras->names.Add(SSL_CTX_get0_certificate(result.get()), 0);
  for (size_t i = 1; i < config.certs.size(); ++i) {
    auto ctx = BuildOneServerContext(config, i, alpn.value());
    if (!ctx.ok()) return ctx.error();
    X509* cert = SSL_CTX_get0_certificate(ctx.value().get());
    if (extras->names.Add(cert, i) == 0) {
      return Error::Invalid("certificate " + Quote(config.certs[i].cert_file) +
                            " has no DNS name or CN to match SNI against");
    }
    extras->sni_ctxs.push_back(ctx.value().release());
  }
  // The callback is read from the context the SSL was created with (its
  // session context), so only the default context needs it.
  SSL_CTX_set_tlsext_servername_callback(result.get(), OnServerName);
  SSL_CTX_set_tlsext_servername_arg(result.get(), extras);
  return result;
}

Result<TlsContext> BuildClientContext(const TlsClientConfig& config) {
  ERR_clear_error();
  if (Status s = CheckDepth(config.verify_depth); !s.ok()) return s.error();
  auto alpn = AlpnWire(config.alpn);
  if (!alpn.ok()) return alpn.error();
  if (config.cert_file.empty() != config.key_file.empty()) {
    return Error::Invalid("TLS client certificate needs both cert_file and key_file (cert " +
                          Quote(config.cert_file) + ", key " + Quote(config.key_file) + ")");
  }
  if (config.sni.size() > 255) {
    return Error::Invalid("SNI " + Quote(config.sni.substr(0, 32) + "...") +
                          " is longer than 255 bytes");
  }

  TlsContext result(SSL_CTX_new(TLS_client_method()));
  if (!result) return SslError("cannot create a TLS client context");
  SSL_CTX* ctx = result.get();
  CtxExtras* extras = AttachExtras(ctx);
  if (extras == nullptr) return SslError("cannot attach data to a TLS client context");
  extras->is_client = true;
  extras->verify = config.verify;
  extras->sni = config.sni;
  extras->verify_hostname = config.verify_hostname;

  if (Status s = ConfigureCommon(ctx, config.min_version, config.ciphers, config.ciphersuites);
      !s.ok()) {
    return s.error();
  }
  // SSL_CTX_set_alpn_protos returns 0 on success, unlike nearly everything else.
  if (!alpn.value().empty() &&
      SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(alpn.value().data()),
                              static_cast<unsigned int>(alpn.value().size())) != 0) {
    return SslError("cannot set ALPN protocols");
  }

  if (config.verify) {
    if (!config.ca_file.empty()) {
      if (Status s = CheckReadableFile("CA file", config.ca_file); !s.ok()) return s.error();
    }
    if (!config.ca_dir.empty()) {
      if (Status s = CheckDirectory("CA directory", config.ca_dir); !s.ok()) return s.error();
    }
    if (config.ca_file.empty() && config.ca_dir.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return SslError("cannot load the system trust store");
      }
    } else if (SSL_CTX_load_verify_locations(
                   ctx, config.ca_file.empty() ? nullptr : config.ca_file.c_str(),
                   config.ca_dir.empty() ? nullptr : config.ca_dir.c_str()) != 1) {
      return SslError("CA file " + Quote(config.ca_file) + " / directory " + Quote(config.ca_dir) +
                      ": no PEM certificate could be loaded");
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_verify_depth(ctx, config.verify_depth);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }

  if (!config.cert_file.empty()) {
    if (Status s = LoadCertAndKey(ctx, config.cert_file, config.key_file, "client certificate");
        !s.ok()) {
      return s.error();
    }
  }
  // Resumption: OpenSSL's internal client cache is never consulted by
  // clients, so keep sessions ourselves (OnNewClientSession).
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, OnNewClientSession);
  ERR_clear_error();
  return result;
}

SSL* NewServerSsl(const TlsContext& ctx, int fd) { return NewServerSsl(ctx.get(), fd); }

SSL* NewServerSsl(SSL_CTX* ctx, int fd) {
  SSL* ssl = SSL_new(ctx);
  // SSL_set_fd makes a socket BIO with BIO_NOCLOSE: the fd stays the caller's.
  if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    ERR_clear_error();
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

SSL* NewClientSsl(const TlsContext& ctx, int fd, std::string_view sni) {
  return NewClientSsl(ctx.get(), fd, sni);
}

SSL* NewClientSsl(SSL_CTX* ctx, int fd, std::string_view sni) {
  CtxExtras* extras = GetExtras(ctx);
  std::string send_name;
  std::string check_name;
  if (!sni.empty()) {
    send_name = check_name = std::string(sni);
  } else if (extras != nullptr) {
    send_name = extras->sni;
    check_name = extras->verify_hostname.empty() ? extras->sni : extras->verify_hostname;
  }
  const bool verify = extras == nullptr || extras->verify;
  if (send_name.find('\0') != std::string::npos || check_name.find('\0') != std::string::npos ||
      send_name.size() > 255) {
    return nullptr;
  }

  SSL* ssl = SSL_new(ctx);
  bool ok = ssl != nullptr && SSL_set_fd(ssl, fd) == 1;
  if (ok) {
    SSL_set_connect_state(ssl);
    if (!send_name.empty() && !IsIpLiteral(send_name)) {
      ok = SSL_set_tlsext_host_name(ssl, send_name.c_str()) == 1;
    }
    if (ok && verify && !check_name.empty()) ok = SetVerifyName(ssl, check_name);
    if (ok && extras != nullptr && extras->is_client) OfferLastSession(*extras, ssl, send_name);
  }
  if (!ok) {
    SSL_free(ssl);
    ERR_clear_error();
    return nullptr;
  }
  return ssl;
}

}  // namespace zrelay
