// TlsTransport: a TLS leg, read and written with SSL_read/SSL_write through
// ssl/TlsStream over the contiguous spans of a ring buffer.
//
// Readiness is per operation: a read may be blocked on the socket becoming
// writable (a handshake or KeyUpdate reply to send) and a write on it
// becoming readable, so each remembers what it waits for. Decrypted bytes
// buffered inside OpenSSL make a read ready with no fd event at all.
#pragma once

#include <string>
#include <string_view>

#include "engine/event_loop.h"
#include "engine/syscalls.h"
#include "relay/transport.h"
#include "ssl/tls_stream.h"

namespace zrelay {

class TlsTransport final : public Transport {
 public:
  // Takes ownership of `ssl`.
  TlsTransport(SSL* ssl, FdWatch& watch, Syscalls& sys) : tls_(ssl), watch_(watch), sys_(sys) {}

  bool handshake_done() const { return tls_.handshake_done(); }
  // Once the handshake is done: the protocol version ("TLSv1.3") and the
  // server name the client asked for (empty: none).
  std::string_view version() const { return tls_.version(); }
  std::string_view sni() const { return tls_.sni(); }
  // Whether Handshake() could make progress now.
  bool HandshakeReady() const { return Ready(handshake_wait_); }

  IoResult Handshake() override;
  IoResult Read(RingBuffer& ring, size_t max) override;
  IoResult Write(RingBuffer& ring) override;
  IoResult ShutdownWrite() override;
  bool ReadReady() const override { return tls_.pending() > 0 || Ready(read_wait_); }
  bool WriteReady() const override { return Ready(write_wait_); }
  // Bytes on a TLS leg are records to decrypt or encrypt in user space: no
  // pipe can carry them, so the pipe calls keep Transport's refusal.
  bool can_splice() const override { return false; }
  bool truncated() const override { return truncated_; }
  std::string error_detail() const override { return detail_; }

 private:
  enum class Wait { kNothing, kReadable, kWritable };
  bool Ready(Wait wait) const {
    if (wait == Wait::kNothing) return true;
    return wait == Wait::kReadable ? watch_.readable() : watch_.writable();
  }
  // Maps a TlsStream result onto the pump's, clearing the fd flag that the
  // socket reported EAGAIN for and remembering what this operation waits on.
  IoResult Map(const TlsResult& r, Wait& wait);

  TlsStream tls_;
  FdWatch& watch_;
  Syscalls& sys_;
  // A client speaks first and a server may already have its ClientHello:
  // the first handshake step is always worth trying.
  Wait handshake_wait_ = Wait::kNothing;
  Wait read_wait_ = Wait::kReadable;
  Wait write_wait_ = Wait::kWritable;
  Wait shutdown_wait_ = Wait::kWritable;
  bool close_notify_sent_ = false;
  bool truncated_ = false;
  std::string detail_;
};

}  // namespace zrelay
