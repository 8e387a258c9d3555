#include "ssl/tls_stream.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "ssl/openssl_errors.h"

namespace zrelay {
namespace {

TlsResult Make(TlsIo io, size_t bytes = 0) {
  TlsResult r;
  r.status = io;
  r.bytes = bytes;
  return r;
}

// OpenSSL's SSL_get_error() reads the thread's error queue: an entry some
// other code left behind would turn our WANT_READ into SSL_ERROR_SSL. Start
// every call clean (cheap: a thread-local lookup on an empty queue), and
// zero errno, which OpenSSL only sets on a failed syscall, so a stale value
// cannot pass for the cause of an EOF.
void BeforeCall() {
  ERR_clear_error();
  errno = 0;
}

TlsResult AlreadyFailed(const std::string& first) {
  TlsResult r = Make(TlsIo::kError);
  r.detail = "connection already failed: " + first;
  return r;
}

TlsResult NoSsl() {
  TlsResult r = Make(TlsIo::kError);
  r.detail = "no SSL (moved from or released)";
  return r;
}

bool IsUnexpectedEof(unsigned long e) {
  return ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

}  // namespace

const char* TlsIoName(TlsIo io) {
  switch (io) {
    case TlsIo::kOk: return "kOk";
    case TlsIo::kWantRead: return "kWantRead";
    case TlsIo::kWantWrite: return "kWantWrite";
    case TlsIo::kEof: return "kEof";
    case TlsIo::kTruncated: return "kTruncated";
    case TlsIo::kError: return "kError";
  }
  return "?";
}

void SetStreamModes(SSL* ssl) {
  // The same modes as the contexts tls_context.cc builds; see the reasons there.
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                        SSL_MODE_RELEASE_BUFFERS);
  SSL_clear_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
}

TlsStream::TlsStream(SSL* ssl) : ssl_(ssl) { NoteHandshake(); }

TlsStream::TlsStream(TlsStream&& other) noexcept
    : ssl_(std::exchange(other.ssl_, nullptr)),
      failure_(std::exchange(other.failure_, std::string())),
      close_notify_sent_(other.close_notify_sent_),
      retry_len_(other.retry_len_),
      handshake_finished_(other.handshake_finished_) {}

TlsStream& TlsStream::operator=(TlsStream&& other) noexcept {
  if (this != &other) {
    SSL_free(ssl_);
    ssl_ = std::exchange(other.ssl_, nullptr);
    failure_ = std::exchange(other.failure_, std::string());
    close_notify_sent_ = other.close_notify_sent_;
    retry_len_ = other.retry_len_;
    handshake_finished_ = other.handshake_finished_;
  }
  return *this;
}

TlsStream::~TlsStream() { SSL_free(ssl_); }

SSL* TlsStream::Release() { return std::exchange(ssl_, nullptr); }

bool TlsStream::handshake_done() const {
  return handshake_finished_ || (ssl_ != nullptr && SSL_is_init_finished(ssl_));
}

// Latches a finished handshake before a call that may fail fatally (and so
// clear OpenSSL's own flag) and after one that may have finished it.
void TlsStream::NoteHandshake() {
  if (ssl_ != nullptr && SSL_is_init_finished(ssl_)) handshake_finished_ = true;
}

// Classifies a failed call; `ret` is its return value, errno is still the
// call's. Always leaves the thread's error queue empty.
TlsResult TlsStream::Fail(int ret, bool handshake) {
  const int saved_errno = errno;
  const int err = SSL_get_error(ssl_, ret);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      return Make(TlsIo::kWantRead);
    case SSL_ERROR_WANT_WRITE:
      return Make(TlsIo::kWantWrite);
    case SSL_ERROR_ZERO_RETURN:
      ERR_clear_error();
      return Make(TlsIo::kEof);
    default:
      break;
  }

  TlsResult r = Make(TlsIo::kError);
  bool truncated = false;
  int sys_errno = 0;
  if (err == SSL_ERROR_SSL) {
    // OpenSSL 3 reports an EOF without close_notify as this SSL error (1.1.1
    // used SSL_ERROR_SYSCALL with errno 0, handled below).
    truncated = IsUnexpectedEof(ERR_peek_last_error());
  } else if (err == SSL_ERROR_SYSCALL) {
    sys_errno = saved_errno;
    if (sys_errno == 0) {
      // The socket BIO may have recorded the errno as a system-library entry.
      const unsigned long e = ERR_peek_last_error();
      if (e != 0 && ERR_SYSTEM_ERROR(e)) sys_errno = ERR_GET_REASON(e);
    }
    truncated = sys_errno == 0 && ERR_peek_error() == 0;
  }

  if (truncated) {
    r.status = TlsIo::kTruncated;
    r.detail = handshake ? "peer closed the connection during the TLS handshake"
                         : "peer closed the connection without close_notify (truncated)";
  } else if (sys_errno != 0) {
    r.sys_errno = sys_errno;
    r.detail = std::string(std::strerror(sys_errno)) + " (errno " + std::to_string(sys_errno) + ")";
  } else if (err != SSL_ERROR_SSL && err != SSL_ERROR_SYSCALL) {
    r.detail = "unexpected SSL_get_error " + std::to_string(err);
  }
  if (handshake && (SSL_get_verify_mode(ssl_) & SSL_VERIFY_PEER) != 0) {
    const long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) {
      AppendDetail(r.detail, std::string("certificate verify failed: ") +
                                 X509_verify_cert_error_string(verify));
    }
  }
  AppendDetail(r.detail, TakeOpenSslErrors());
  if (r.detail.empty()) r.detail = "TLS failure with an empty OpenSSL error queue";
  failure_ = r.detail;
  return r;
}

TlsResult TlsStream::Handshake() {
  if (ssl_ == nullptr) return NoSsl();
  if (SSL_is_init_finished(ssl_)) return Make(TlsIo::kOk);
  if (!failure_.empty()) return AlreadyFailed(failure_);
  BeforeCall();
  const int ret = SSL_do_handshake(ssl_);
  if (ret == 1) {
    NoteHandshake();
    return Make(TlsIo::kOk);
  }
  return Fail(ret, /*handshake=*/true);
}

TlsResult TlsStream::Read(void* buf, size_t len) {
  if (ssl_ == nullptr) return NoSsl();
  if (len == 0) return Make(TlsIo::kOk);
  if (!failure_.empty()) return AlreadyFailed(failure_);
  NoteHandshake();
  const bool in_handshake = !handshake_finished_;
  BeforeCall();
  size_t n = 0;
  const int ret = SSL_read_ex(ssl_, buf, len, &n);
  if (ret == 1) {
    NoteHandshake();
    return Make(TlsIo::kOk, n);
  }
  return Fail(ret, in_handshake);
}

TlsResult TlsStream::Write(const void* buf, size_t len) {
  if (ssl_ == nullptr) return NoSsl();
  if (len == 0) return Make(TlsIo::kOk);
  // OpenSSL may hold a partly sent record of the last call's bytes. Giving it
  // fewer bytes now (len < retry_len_, a caller's bug) makes OpenSSL fail the
  // write ("bad length" or "bad write retry"), which Fail() reports as this
  // stream's error: the session ends, nothing is corrupted.
  if (!failure_.empty()) return AlreadyFailed(failure_);
  NoteHandshake();
  const bool in_handshake = !handshake_finished_;
  BeforeCall();
  size_t n = 0;
  const int ret = SSL_write_ex(ssl_, buf, len, &n);
  if (ret == 1) {
    NoteHandshake();
    retry_len_ = 0;
    return Make(TlsIo::kOk, n);
  }
  TlsResult r = Fail(ret, in_handshake);
  retry_len_ = r.would_block() ? len : 0;
  return r;
}

TlsResult TlsStream::Shutdown() {
  if (ssl_ == nullptr) return NoSsl();
  if (close_notify_sent_) return Make(TlsIo::kOk);
  // OpenSSL forbids SSL_shutdown after a fatal error (it could mark a broken
  // session resumable).
  if (!failure_.empty()) return AlreadyFailed(failure_);
  BeforeCall();
  // 0: our close_notify is sent, the peer's not yet received; 1: both. We do
  // not wait for the peer's: the other direction may still carry data.
  const int ret = SSL_shutdown(ssl_);
  const int saved_errno = errno;
  if (ret >= 0) {
    close_notify_sent_ = true;
    return Make(TlsIo::kOk);
  }
  TlsResult r = Fail(ret, /*handshake=*/false);
  if (r.status == TlsIo::kEof) {
    // SSL_get_error says ZERO_RETURN whenever the peer's close_notify has
    // come in, even when it is our own close_notify that could not be
    // written (EPIPE once the peer is gone). That is a failed write, not an
    // EOF: reported as one, a caller would wait for a writable socket that
    // never comes (pairs stayed open until a drain).
    r.status = TlsIo::kError;
    r.sys_errno = saved_errno != 0 ? saved_errno : EPIPE;
    r.detail = std::string("close_notify not sent: ") + std::strerror(r.sys_errno);
    AppendDetail(r.detail, TakeOpenSslErrors());
    failure_ = r.detail;
  }
  return r;
}

size_t TlsStream::pending() const {
  const int n = ssl_ ? SSL_pending(ssl_) : 0;
  return n > 0 ? static_cast<size_t>(n) : 0;
}

std::string_view TlsStream::alpn() const {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  if (ssl_) SSL_get0_alpn_selected(ssl_, &data, &len);
  return data ? std::string_view(reinterpret_cast<const char*>(data), len) : std::string_view();
}

std::string_view TlsStream::sni() const {
  const char* name = ssl_ ? SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name) : nullptr;
  return name ? std::string_view(name) : std::string_view();
}

std::string_view TlsStream::version() const {
  return handshake_done() ? std::string_view(SSL_get_version(ssl_)) : std::string_view();
}

}  // namespace zrelay
