// Connection: one socket in its protocol phase, before it becomes half of
// a relayed pair. For gateways that speak a protocol first (a greeting,
// STARTTLS, a login that picks the backend) and then hand both legs to the
// engine, which no longer looks at the bytes.
//
//   ListenOptions listen;
//   listen.address = *Address::Parse("0.0.0.0:143");
//   listen.on_accept = [](ConnectionPtr client) {
//     Connection& c = *client;
//     c.Write("* OK ready\r\n");
//     c.ReadLine([client = std::move(client)](Result<std::string> line) mutable {
//       if (!line) return;                      // client gone: dropping it closes it
//       client->Connect(backend, seconds(5), [client = std::move(client)](
//                           Result<ConnectionPtr> server) mutable {
//         Connection& c = *client;
//         if (!server) {                          // say why, then close
//           return c.Write("* BYE no backend\r\n", [client = std::move(client)](Status) {});
//         }
//         Connection::Pipe(std::move(client), std::move(*server), on_close);
//       });
//     });
//   };
//
// Where things run. A Connection lives on one engine worker (the one that
// accepted it, or the one Engine::Adopt picked) and never moves. Every
// method must be called on that worker's thread: from inside a callback of
// this Connection, of another Connection of the same worker, or of
// OnConnection. Every callback runs there too, once, and never inside the
// call that asked for it (a read that the buffer already satisfies still
// answers from the loop), so callers need no re-entrancy care.
//
// Lifetimes. The ConnectionPtr owns the Connection: dropping it (also from
// inside one of its own callbacks) closes the socket and cancels whatever
// is pending, without calling any handler. Queued writes not yet out are
// dropped too: to close after a last word, let that write's handler own
// the ConnectionPtr, as above. A handler usually owns the ConnectionPtr it
// continues with (handlers are move-only for that). Pipe() takes both
// pointers; from then on the pair belongs to the engine and `on_close`
// runs once, on the same worker, when it ends. An Engine that is
// destroyed closes the Connections still open, calling no handler; Drain()
// waits for them up to its grace, then closes them the same way.
//
// Operations. One read at a time (ReadLine, ReadExactly or ReadSome) and
// any number of writes, queued in order; a read may be pending while
// writes are. StartTls waits for queued writes to go out first, and no
// read or write may be started while it runs. Failures arrive as an Error
// whose code says what happened:
//   ENODATA    the peer ended its side (FIN or close_notify) before the
//              read was satisfied (what it did send stays buffered)
//   ETIMEDOUT  not done within SetTimeout()'s limit
//   EMSGSIZE   ReadLine found no line end within max_line bytes
//   EPROTO     TLS failed (the message has OpenSSL's reason)
//   ECONNRESET, EPIPE, ...  the socket's own errno
//   EBUSY      started against the rules above (a second read, a read or
//              write while StartTls runs, StartTls with a read pending);
//              EINVAL for StartTls twice or a read of at most 0 bytes.
//              These refuse that one call: the Connection is not broken.
// After any other failure but ENODATA, the Connection is broken: every
// later operation fails at once with the same error, and what was pending
// fails with it. A TLS peer that closes without close_notify ends reads
// with ENODATA too (the message says so), but its session takes no more
// writes (EPROTO).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "engine/address.h"
#include "engine/clock.h"
#include "engine/result.h"
#include "relay/relay.h"
#include "relay/unique_function.h"

namespace zrelay {

// Handlers are move-only (relay/unique_function.h), so one can own the
// ConnectionPtr it continues with; any lambda or std::function converts.
using ReadHandler = UniqueFunction<void(Result<std::string> data)>;
using DoneHandler = UniqueFunction<void(Status status)>;
using ConnectionHandler = UniqueFunction<void(Result<ConnectionPtr> connection)>;

enum class TlsRole {
  kServer,  // accept a TLS client (STARTTLS as the server; implicit TLS)
  kClient,  // originate TLS to a server (STARTTLS towards a backend)
};

class Connection {
 public:
  virtual ~Connection() = default;

  // Reads one line: the bytes up to the first "\n", which is not returned,
  // nor a "\r" just before it. Fails with EMSGSIZE when the first
  // `max_line` bytes hold no "\n" (the line end counts against the limit).
  // At EOF, a last line without "\n" is not a line: ENODATA, its bytes
  // stay buffered.
  virtual void ReadLine(ReadHandler done, size_t max_line = 8192) = 0;
  // Reads exactly `n` bytes (an IMAP literal, a length-prefixed frame);
  // n = 0 answers "".
  virtual void ReadExactly(size_t n, ReadHandler done) = 0;
  // Reads what is there: at least one byte, at most `max`.
  virtual void ReadSome(ReadHandler done, size_t max = 64 << 10) = 0;
  // Bytes read from the socket and not yet returned by a read. Pipe()
  // passes them on to the other leg first.
  virtual size_t buffered() const = 0;

  // Queues `data`; `done` (optional) runs once all of it was written to
  // the socket (or TLS), or the write failed.
  virtual void Write(std::string data, DoneHandler done = {}) = 0;

  // Starts TLS on this socket in place, once the queued writes are out.
  // The engine holds its own reference to `ctx` (build it with
  // ssl/tls_context.h). As the server, bytes the peer sent right behind
  // the line that asked for TLS (already buffered here) are read as the
  // start of its handshake, never as plaintext (as the client too:
  // bytes buffered then go to TLS, not to a later read). As the client, `sni` is
  // sent and verified (empty: the context's own). `done` runs when the
  // handshake finished or failed.
  virtual void StartTls(SSL_CTX* ctx, TlsRole role, DoneHandler done, std::string sni = {}) = 0;

  // Opens a connection to `address` from this connection's worker, within
  // `timeout` (or SetTimeout's, when shorter); `done` gets it (a Connection
  // on the same worker, ready to read and write, or to Pipe() with this
  // one) or why not, naming the address (ECONNREFUSED, ETIMEDOUT, ...).
  // It does not count as this Connection's pending operation, but dropping
  // this Connection cancels it (`done` is not called).
  virtual void Connect(const Address& address, Duration timeout, ConnectionHandler done) = 0;

  // Every read, write, StartTls and Connect started from now on fails with
  // ETIMEDOUT when it has not finished within `timeout` (0: never, the
  // default). Changing it does not touch operations already pending.
  virtual void SetTimeout(Duration timeout) = 0;
  // Runs `fn` once after `delay`, on the loop, unless the Connection is
  // gone (or piped) first.
  virtual void After(Duration delay, UniqueFunction<void()> fn) = 0;

  // The peer's address (a listener's client, a backend connected to, or
  // the adopted socket's peer; empty for a unix socket without a name).
  virtual const Address& peer() const = 0;
  virtual int fd() const = 0;
  // The engine worker this Connection lives on.
  virtual size_t worker() const = 0;
  // Once StartTls finished: the protocol version ("TLSv1.3") and, on the
  // server side, the server name the client asked for. Empty otherwise.
  virtual std::string_view tls_version() const = 0;
  virtual std::string_view sni() const = 0;

  // Turns `a` and `b` (both of the same worker, neither with an operation
  // pending) into a relayed pair on that worker, as Engine::Pipe would,
  // carrying each one's buffered() bytes to the other leg first and
  // counting them in PairStats. A TLS leg stays TLS. Pairs from a
  // listener's client count in that listener's metrics, and the client's
  // max_connections slot is held until the pair closes. Refused when the
  // legs are on two workers, when either has a read, a queued write (Pipe
  // from the last write's handler), StartTls or Connect pending, or failed
  // earlier: both are closed, and `on_close` gets kError (EINVAL) with a
  // detail naming the leg and why, from the loop.
  static void Pipe(ConnectionPtr a, ConnectionPtr b, OnClose on_close,
                   const PairOptions& options = {});
};

}  // namespace zrelay
