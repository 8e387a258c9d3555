// ConnectionImpl: relay/connection.h's Connection, on one Worker's loop.
//
// Every operation records what it asks for and schedules the connection on
// the loop's ready list; the work (socket I/O, the TLS handshake, handing
// results to handlers) happens in Progress(), from fd events and the ready
// list, never inside the caller's call. Reads pull from the socket only
// while a read is pending, so a peer that sends more than the protocol
// phase reads is slowed by TCP, and whatever was read past the last request
// stays in the ReadBuffer (Pipe() passes it on).
//
// Destruction goes through ConnectionDeleter: Close() at once (socket,
// timers, handlers), the memory at the end of the loop turn (DeferDelete),
// so dropping a ConnectionPtr inside one of its own handlers is safe.
#pragma once

#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/connector.h"
#include "engine/event_loop.h"
#include "engine/timer_wheel.h"
#include "relay/connection.h"
#include "relay/listener_counters.h"
#include "relay/read_buffer.h"
#include "relay/write_queue.h"
#include "ssl/tls_context.h"
#include "ssl/tls_stream.h"

namespace zrelay {

class Worker;

// What a listener's client owes its listener: the counters its pair counts
// in, and the release of its max_connections slot and listener hold, once
// the Connection (or the pair it became) is gone. Worker thread only.
struct ListenerTie {
  ListenerWorkerCounters* counters = nullptr;
  std::function<void()> release;
};

class ConnectionImpl final : public Connection,
                             public ReadyHandler,
                             public Deferrable,
                             private FdHandler,
                             private ConnectHandler {
 public:
  // A connected socket, on `worker`'s thread. `accepted`: our listener made
  // it (non-blocking, TCP_NODELAY already); otherwise it is made so. When
  // it cannot be registered with the loop, the Connection is broken from
  // the start (every operation fails with why).
  static ConnectionPtr Adopt(Worker& worker, UniqueFd fd, const Address& peer, bool accepted,
                             ListenerTie tie = {});

  ~ConnectionImpl() override;

  // Connection.
  void ReadLine(ReadHandler done, size_t max_line) override;
  void ReadExactly(size_t n, ReadHandler done) override;
  void ReadSome(ReadHandler done, size_t max) override;
  size_t buffered() const override { return in_.size(); }
  void Write(std::string data, DoneHandler done) override;
  void StartTls(SSL_CTX* ctx, TlsRole role, DoneHandler done, std::string sni) override;
  void Connect(const Address& address, Duration timeout, ConnectionHandler done) override;
  void SetTimeout(Duration timeout) override { timeout_ = timeout; }
  void After(Duration delay, UniqueFunction<void()> fn) override;
  const Address& peer() const override { return peer_; }
  int fd() const override { return fd_.get(); }
  size_t worker() const override;
  std::string_view tls_version() const override;
  std::string_view sni() const override;

  // For Connection::Pipe.
  Worker& owner() const { return worker_; }
  // What keeps it from becoming a pair now ("a read is pending"); empty: nothing.
  std::string Busy() const;
  const std::optional<Error>& broken() const { return broken_; }
  // Hands its socket over as a Leg (TLS included, buffered bytes as
  // preread) and its listener tie; the Connection is closed and does
  // nothing more. Not Busy(), not broken.
  Leg TakeLeg(ListenerTie& tie);

  // ConnectionDeleter: Close(), then destroy at the end of the loop turn.
  void Destroy();
  // The worker is going away: Close() without releasing the listener tie
  // (the engine is shutting down; its listeners are gone with it).
  void Orphan();
  // Drain()'s deadline: closes it as dropping the ConnectionPtr would (no
  // handler runs), counted as kDrained.
  void Drain();

  // ConnectionList links.
  ConnectionImpl* list_prev = nullptr;
  ConnectionImpl* list_next = nullptr;

 private:
  enum class ReadKind { kNone, kLine, kExactly, kSome };

  // A Timer that calls a member function.
  struct OpTimer final : TimerHandler {
    OpTimer(ConnectionImpl* c, void (ConnectionImpl::*f)()) : owner(c), fn(f) {}
    void OnTimer(Timer&) override { (owner->*fn)(); }
    ConnectionImpl* owner;
    void (ConnectionImpl::*fn)();
    Timer timer{this};
  };
  // One After() call.
  struct AfterTimer final : TimerHandler {
    AfterTimer(ConnectionImpl* c, UniqueFunction<void()> f) : owner(c), fn(std::move(f)) {}
    void OnTimer(Timer&) override { owner->FireAfter(this); }
    ConnectionImpl* owner;
    UniqueFunction<void()> fn;
    Timer timer{this};
  };
  struct PendingTls {
    TlsContext ctx;  // our reference, until the SSL (which holds its own) is made
    TlsRole role;
    std::string sni;
    DoneHandler done;
  };

  ConnectionImpl(Worker& worker, const Address& peer);
  EventLoop& loop() const;

  // Runs whatever can progress, then the handlers of what finished.
  void Progress();
  void OnReady() override { Progress(); }
  void OnFdEvent(FdWatch& watch, uint32_t events) override;
  void OnConnect(Result<UniqueFd> fd) override;

  void BeginRead(ReadKind kind, size_t size, ReadHandler done);
  // True when the pending read can be answered from the buffer (it then
  // is), or failed.
  bool AnswerRead();
  void FillForRead();
  void FlushWrites();
  void BeginHandshake();
  void StepHandshake();
  // Fails every pending operation with `error` and every later one too.
  void Break(Error error);
  // Runs `fn` from the loop (the ready list), unless the Connection closes first.
  void Later(UniqueFunction<void()> fn);
  void Arm(OpTimer& timer);
  void RearmWriteTimer();
  void OnReadTimeout();
  void OnWriteTimeout();
  void OnTlsTimeout();
  void FireAfter(AfterTimer* timer);
  Error Timeout(const char* what) const;
  // Closes the socket and cancels everything, calling no handler.
  void Close();
  CloseCause EndCause() const;

  Worker& worker_;
  Address peer_;
  UniqueFd fd_;
  FdWatch watch_;
  bool closed_ = false;
  bool destroyed_ = false;
  bool orphaned_ = false;
  bool drained_ = false;
  bool eof_ = false;        // the peer ended its side (FIN or close_notify)
  std::string eof_detail_;  // how, for ENODATA's message
  std::optional<Error> broken_;
  Duration timeout_{};

  ReadBuffer in_;
  ReadKind read_kind_ = ReadKind::kNone;
  size_t read_size_ = 0;  // max_line, n or max
  ReadHandler read_done_;
  OpTimer read_timer_{this, &ConnectionImpl::OnReadTimeout};

  WriteQueue out_;
  OpTimer write_timer_{this, &ConnectionImpl::OnWriteTimeout};

  std::optional<PendingTls> pending_tls_;  // StartTls asked, handshake not done
  std::unique_ptr<TlsStream> tls_;
  TlsRole tls_role_ = TlsRole::kServer;
  OpTimer tls_timer_{this, &ConnectionImpl::OnTlsTimeout};

  std::list<AfterTimer> after_;
  // Connections this one is connecting (each owns its Connector), and for
  // such a one: who asked, and its handler.
  std::vector<ConnectionImpl*> connecting_;
  ConnectionImpl* origin_ = nullptr;
  std::unique_ptr<Connector> connector_;
  ConnectionHandler connect_done_;

  // Handlers whose operation finished, to run from the loop.
  std::vector<UniqueFunction<void()>> finished_;
  ListenerTie tie_;
};

}  // namespace zrelay
