// TlsStream: a non-blocking TLS connection over a socket, with results a
// relay pump can act on without knowing OpenSSL.
//
//   TlsStream tls(NewServerSsl(ctx, fd));
//   TlsResult r = tls.Handshake();      // kWantRead / kWantWrite: wait, call again
//   r = tls.Read(buf, sizeof buf);      // kOk with bytes, or why not
//
// Readiness. Any call may need the socket readable OR writable, whatever its
// name: SSL_read can have a handshake or a TLS 1.3 KeyUpdate reply to send,
// and SSL_write can be stuck behind a record it must read first. kWantRead
// means "call again once the fd is readable", kWantWrite "once writable", for
// any of the calls. Edge-triggered callers: kWantRead/kWantWrite are the only
// results that mean the socket said EAGAIN, and after a kOk Read, decrypted
// bytes may still sit inside OpenSSL (pending()) with no edge to come.
//
// Errors. Every failure drains this thread's OpenSSL error queue into
// TlsResult::detail (plus errno text, plus the certificate verify result for
// handshake failures), and leaves the queue empty, so the next connection
// served by this thread never sees this one's errors.
//
// Signals. OpenSSL writes with write(2): a peer that is gone raises SIGPIPE.
// The calling thread must block or ignore SIGPIPE (zrelay's workers block it).
//
// A TlsStream is used by one thread at a time; it never closes the fd.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

typedef struct ssl_st SSL;  // NOLINT: OpenSSL's own forward declaration

namespace zrelay {

enum class TlsIo {
  kOk,         // done; `bytes` says how many were read / written
  kWantRead,   // blocked: call again once the fd is readable
  kWantWrite,  // blocked: call again once the fd is writable
  kEof,        // the peer sent close_notify: its direction ended cleanly
  kTruncated,  // the peer's direction ended WITHOUT close_notify (fatal)
  kError,      // fatal: see sys_errno and detail
};
const char* TlsIoName(TlsIo io);

// Gives `ssl` the settings TlsStream relies on, whatever its SSL_CTX says:
// partial writes (Write reports each record sent, like write(2)), a moving
// write buffer (a retried Write may pass its bytes from another address,
// as a ring buffer's span does), released idle buffers, and an EOF without
// close_notify reported as kTruncated (SSL_OP_IGNORE_UNEXPECTED_EOF
// cleared: it would make a cut-off stream look cleanly ended). SSLs from
// NewServerSsl / NewClientSsl have these from their context already; the
// relay applies them to every SSL an embedder hands in, so one made with a
// bare SSL_new works the same. Any time before the stream's first Write.
void SetStreamModes(SSL* ssl);

struct TlsResult {
  TlsIo status = TlsIo::kOk;
  size_t bytes = 0;
  // For kError (and kTruncated): errno from the socket (ECONNRESET, EPIPE,
  // ...) or 0 when TLS itself failed.
  int sys_errno = 0;
  // For kError and kTruncated: why, in words, e.g.
  //   "certificate verify failed: unable to get local issuer certificate;
  //    error:0A000086:SSL routines::certificate verify failed"
  std::string detail;

  bool ok() const { return status == TlsIo::kOk; }
  bool would_block() const { return status == TlsIo::kWantRead || status == TlsIo::kWantWrite; }
};

class TlsStream {
 public:
  TlsStream() = default;
  // Takes ownership of `ssl` (SSL_free on destruction). Its fd and its
  // accept/connect state come from NewServerSsl / NewClientSsl.
  explicit TlsStream(SSL* ssl);
  TlsStream(TlsStream&& other) noexcept;
  TlsStream& operator=(TlsStream&& other) noexcept;
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;
  ~TlsStream();

  // The handshake finished (before this stream or through it). Stays true
  // after a later fatal error, which OpenSSL records by putting the SSL back
  // "in init": the version and server name are still those it agreed on.
  bool handshake_done() const;

  // Runs the handshake as server or client (per the SSL's state).
  //   kOk        the handshake is complete (also when it already was).
  //   kWantRead  / kWantWrite: call again when the fd is ready.
  //   kTruncated the peer closed the socket mid-handshake (no alert).
  //   kError     failed: detail has OpenSSL's reasons and, when the peer's
  //              certificate was rejected, the verify result; sys_errno is
  //              set for socket errors (ECONNRESET...).
  // TLS 1.3 note: a client finishes its handshake before the server has
  // checked the client's certificate. A server that rejects it (mutual TLS)
  // shows up on the client as kError from the first Read, with detail
  // "... alert certificate required" or "... alert unknown ca".
  TlsResult Handshake();

  // Reads up to `len` decrypted bytes (SSL_read_ex). Drives an unfinished
  // handshake first.
  //   kOk        bytes > 0 were read (at most `len`); more may be pending().
  //              len == 0 returns kOk with 0 bytes and does nothing.
  //   kWantRead  / kWantWrite: nothing to read now; call again when ready.
  //   kEof       close_notify received: no more bytes will come. The stream
  //              can still Write (half-close), then Shutdown.
  //   kTruncated the socket hit EOF without close_notify. OpenSSL makes this
  //              fatal (and sends the peer a fatal alert as it reads the EOF):
  //              the stream can no longer Write or Shutdown. A relay
  //              decides what it means (a cut-off response must not look
  //              complete); we do not set SSL_OP_IGNORE_UNEXPECTED_EOF, which
  //              would make it indistinguishable from kEof.
  //   kError     fatal: reset (sys_errno ECONNRESET), TLS alert, bad record.
  TlsResult Read(void* buf, size_t len);

  // Writes up to `len` bytes (SSL_write_ex); partial writes are enabled, so
  // kOk may report fewer bytes than `len` (one or more whole records).
  //   kOk        bytes > 0 were accepted (sent to the socket); len == 0
  //              returns kOk with 0 bytes and does nothing.
  //   kWantWrite / kWantRead: nothing more was accepted. OpenSSL may hold
  //              part of a record: the next Write MUST pass the same bytes
  //              again (from any address, at least as many), never fewer.
  //   kError     fatal: EPIPE / ECONNRESET in sys_errno, or a TLS failure.
  //              Also for any call after a fatal result (kError, kTruncated)
  //              from any call: detail "connection already failed: ...".
  TlsResult Write(const void* buf, size_t len);

  // Sends close_notify (SSL_shutdown), once; it does not wait for the peer's.
  // After kOk the caller may shutdown(fd, SHUT_WR); Read still works until
  // the peer's close_notify (kEof). Only call after the handshake.
  //   kOk        close_notify is on the wire (or was already).
  //   kWantWrite / kWantRead: call again when the fd is ready.
  //   kError     the connection already failed (including after kTruncated:
  //              OpenSSL can send nothing more, but the caller may still end
  //              its side with shutdown(SHUT_WR)), is mid-handshake, or the
  //              socket failed (sys_errno EPIPE / ECONNRESET).
  TlsResult Shutdown();

  // Decrypted bytes buffered inside OpenSSL (SSL_pending), readable now
  // without any socket event. Edge-triggered callers must drain these before
  // waiting for the next edge, or they wait forever.
  size_t pending() const;

  // The negotiated ALPN protocol; empty when none. Valid while the stream lives.
  std::string_view alpn() const;
  // The SNI: the name the client sent (server side) or sends (client side).
  std::string_view sni() const;
  // The negotiated protocol version ("TLSv1.3"), once the handshake is
  // done; empty before. Valid while the stream lives.
  std::string_view version() const;

  // The underlying SSL (still owned here), for inspection: peer certificate,
  // cipher, version.
  SSL* ssl() const { return ssl_; }
  // Gives up ownership without freeing (e.g. to build a relay Leg).
  SSL* Release();

 private:
  TlsResult Fail(int ret, bool handshake);

  SSL* ssl_ = nullptr;
  // Non-empty once a fatal result (kError, kTruncated) was returned: its
  // detail. Every later call returns kError citing it, because OpenSSL's
  // state after a fatal error gives misleading answers (a Write after
  // truncation re-reports the EOF; SSL_shutdown must not be called at all).
  std::string failure_;
  bool close_notify_sent_ = false;  // Shutdown() returned kOk
  size_t retry_len_ = 0;            // bytes of a Write that returned kWant*
  bool handshake_finished_ = false;  // seen finished (NoteHandshake)

  void NoteHandshake();
};

}  // namespace zrelay
