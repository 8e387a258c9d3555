#include "tests/chaos/driver.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include "engine/socket.h"
#include "engine/unique_fd.h"
#include "ssl/tls_context.h"
#include "ssl/tls_stream.h"
#include "tests/chaos/close_check.h"
#include "tests/chaos/zrelayd_process.h"
#include "tests/support/test_certs.h"

namespace zrelay::chaos {
namespace {

constexpr size_t kChunk = 64 << 10;

// Receive buffers small enough that a stalled reader's bytes back up into
// zrelayd instead of into the reader's socket (loopback autotunes them to
// megabytes), set before the handshake so the window offered matches. A
// client knows it will stall; backend connections all get the larger one.
constexpr int kStalledReceiveBuffer = 16 << 10;
constexpr int kBackendReceiveBuffer = 128 << 10;

// How a side's incoming stream ended.
enum class End { kOpen, kEof, kTruncated, kReset, kError };
const char* EndName(End e) {
  switch (e) {
    case End::kOpen:
      return "open";
    case End::kEof:
      return "eof";
    case End::kTruncated:
      return "eof-without-close_notify";
    case End::kReset:
      return "reset";
    case End::kError:
      return "error";
  }
  return "?";
}

enum class Io { kOk, kAgain, kEof, kTruncated, kReset, kError };

struct IoResult {
  Io io = Io::kOk;
  size_t bytes = 0;
  int err = 0;
};

Io FromErrno(int err) {
  if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return Io::kAgain;
  if (err == ECONNRESET || err == EPIPE) return Io::kReset;
  return Io::kError;
}

IoResult FromTls(const TlsResult& r) {
  switch (r.status) {
    case TlsIo::kOk:
      return {Io::kOk, r.bytes, 0};
    case TlsIo::kWantRead:
    case TlsIo::kWantWrite:
      return {Io::kAgain};
    case TlsIo::kEof:
      return {Io::kEof};
    case TlsIo::kTruncated:
      return {Io::kTruncated};
    case TlsIo::kError:
      break;
  }
  return {FromErrno(r.sys_errno) == Io::kReset ? Io::kReset : Io::kError, 0, r.sys_errno};
}

// The first flight of a TLS client made with `ctx`: its ClientHello.
std::string MakeClientHello(SSL_CTX* ctx) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return {};
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);  // the SSL owns both now
  SSL_set_connect_state(ssl);
  SSL_set_tlsext_host_name(ssl, "localhost");
  (void)SSL_do_handshake(ssl);  // wants the server's answer, having written its hello
  char* data = nullptr;
  long n = BIO_get_mem_data(out, &data);
  std::string hello(data != nullptr && n > 0 ? data : "", n > 0 ? static_cast<size_t>(n) : 0);
  SSL_free(ssl);
  return hello;
}

class Driver;
struct PairRun;

struct Pollable {
  virtual ~Pollable() = default;
  virtual void OnEvent() = 0;
};

// One driver socket: a pair's client, or a connection the backend accepted.
struct Side : Pollable {
  Driver* driver = nullptr;
  PairRun* pair = nullptr;  // backend sides: null until the header names the pair
  bool client = false;
  UniqueFd fd;
  std::unique_ptr<TlsStream> tls;
  bool over = false;  // the socket is closed

  uint64_t sent = 0;
  bool fin_sent = false;
  bool write_failed = false;

  uint64_t received = 0;
  int64_t mismatch = -1;  // offset of the first wrong (or unexpected) byte
  End end = End::kOpen;
  int err = 0;
  bool saw_reset = false;  // ECONNRESET or EPIPE on a read or a write
  TimePoint paused_until{};
  bool stalled = false;

  char header[kHeaderBytes];  // backend sides, until identified

  void OnEvent() override;
};

struct PairRun {
  PairPlan plan;
  Side client;
  Side* backend = nullptr;
  bool complete = false;
  bool timed_out = false;
};

class Driver {
 public:
  Driver(const ChaosOptions& options, ChaosReport& report)
      : o_(options), report_(report), epoll_(::epoll_create1(EPOLL_CLOEXEC)) {}

  void Run();
  void Drive(Side& s);
  void Accept();

 private:
  bool Setup();
  bool StartBackend();
  void Flap(bool open);
  void StartPair(PairRun& p);
  bool Watch(Side& s);
  Result<UniqueFd> ConnectToZrelayd(bool stalls);
  void CloseSide(Side& s, bool reset);
  void After(Duration delay, std::function<void()> fn) {
    timers_.emplace(Clock::now() + delay, std::move(fn));
  }
  void RunTimers();
  bool Identify(Side& s);
  bool StepRead(Side& s);
  bool StepWrite(Side& s);
  void CheckTriggers(PairRun& p);
  void MaybeComplete(PairRun& p);
  bool BackendOptional(const PairRun& p) const;
  bool Resetter(const Side& s) const;
  bool NeverFin(const Side& s) const;
  uint64_t OutTotal(const Side& s) const;
  uint64_t InLimit(const Side& s) const;
  void FillOut(const Side& s, uint64_t offset, char* buf, size_t len) const;
  void FillIn(const Side& s, uint64_t offset, char* buf, size_t len) const;
  void Evaluate(PairRun& p, std::vector<CloseExpectation>& expectations);
  void Fail(const PairRun& p, const std::string& what);
  void CheckZrelayd(const std::vector<CloseExpectation>& expectations);

  const ChaosOptions& o_;
  ChaosReport& report_;
  UniqueFd epoll_;
  std::unique_ptr<ZrelaydProcess> zrelayd_;
  testing::TestCerts certs_;
  TlsContext client_tls_;
  std::string client_hello_;
  Address backend_address_;
  UniqueFd backend_listener_;
  UniqueFd filler_;  // black hole: the connection that fills the accept queue
  bool flapping_ = false;
  uint64_t flaps_ = 0;

  struct ListenerWatch : Pollable {
    Driver* d;
    void OnEvent() override { d->Accept(); }
  } listener_watch_;

  std::vector<std::unique_ptr<PairRun>> pairs_;
  std::vector<std::unique_ptr<Side>> accepted_;
  std::multimap<TimePoint, std::function<void()>> timers_;
  size_t in_flight_ = 0;
  FdCensus baseline_;
};

void Side::OnEvent() { driver->Drive(*this); }

bool Driver::Setup() {
  if (!epoll_) return report_.failures.push_back("epoll_create1 failed"), false;
  listener_watch_.d = this;
  std::vector<std::string> args = {
      "--listen",
      "127.0.0.1:0",
      "--mode",
      o_.mode,
      "--workers",
      std::to_string(o_.workers),
      "--log-closes",
      "--drain-grace",
      "2s",
      "--connect-timeout",
      std::to_string(std::chrono::duration_cast<milliseconds>(o_.connect_timeout).count()) + "ms"};
  if (o_.tls) {
    auto certs = testing::MakeTestCerts();
    if (!certs.ok()) return report_.failures.push_back(certs.error().message()), false;
    certs_ = certs.value();
    args.insert(args.end(), {"--tls-cert", certs_.server.cert, "--tls-key", certs_.server.key});
    TlsClientConfig cc;
    cc.ca_file = certs_.ca.cert;
    cc.sni = "localhost";
    auto ctx = BuildClientContext(cc);
    if (!ctx.ok()) return report_.failures.push_back(ctx.error().message()), false;
    client_tls_ = std::move(ctx.value());
    client_hello_ = MakeClientHello(client_tls_.get());
    if (client_hello_.empty()) return report_.failures.push_back("no ClientHello"), false;
  }
  if (!StartBackend()) return false;
  args.insert(args.end(), {"--backend", backend_address_.ToString()});
  args.insert(args.end(), o_.extra_args.begin(), o_.extra_args.end());
  auto z = ZrelaydProcess::Start(o_.zrelayd, args, o_.wrapper);
  if (!z.ok()) return report_.failures.push_back(z.error().message()), false;
  zrelayd_ = std::move(z.value());
  auto census = TakeFdCensus(zrelayd_->pid());
  if (!census.ok()) return report_.failures.push_back(census.error().message()), false;
  baseline_ = census.value();
  return true;
}

bool Driver::StartBackend() {
  bool black_hole = o_.backend == BackendKind::kBlackHole;
  Address where =
      backend_address_.port() != 0 ? backend_address_ : Address::Parse("127.0.0.1:0").value();
  auto fd = ListenOn(where, {.backlog = black_hole ? 0 : 4096, .reuse_port = false});
  if (!fd.ok()) {
    if (flapping_) return false;  // the port is still busy: try again later
    return report_.failures.push_back("backend listener: " + fd.error().message()), false;
  }
  backend_listener_ = std::move(fd.value());
  // Accepted sockets inherit it; a stalled backend reader is not known until
  // its header arrives, and shrinking an open connection's buffer below a
  // (64 KiB loopback) segment would wedge it.
  (void)SetReceiveBuffer(backend_listener_.get(), kBackendReceiveBuffer);
  backend_address_ = LocalAddress(backend_listener_.get()).value();
  if (black_hole) {
    // listen(0) queues one connection; with it never accepted, the kernel
    // drops every later SYN and zrelayd's connects hang.
    auto filler = StartConnect(backend_address_);
    if (!filler.ok()) return report_.failures.push_back(filler.error().message()), false;
    filler_ = std::move(filler.value());
    return true;
  }
  struct epoll_event ev {};
  ev.events = EPOLLIN;
  ev.data.ptr = static_cast<Pollable*>(&listener_watch_);
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, backend_listener_.get(), &ev);
  return true;
}

void Driver::Flap(bool open) {
  if (open) {
    if (!StartBackend()) return After(milliseconds(10), [this] { Flap(true); });
  } else {
    backend_listener_.Reset();  // resets connections still in its queue
  }
  bool more = std::any_of(pairs_.begin(), pairs_.end(), [](const auto& p) { return !p->complete; });
  if (!more && open) return;
  uint64_t r = Mix64(o_.seed ^ ++flaps_);
  Duration next = open ? milliseconds(10 + r % 60) : milliseconds(5 + r % 30);
  After(next, [this, open] { Flap(!open); });
}

void Driver::Accept() {
  while (backend_listener_) {
    int fd = ::accept4(backend_listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    auto side = std::make_unique<Side>();
    side->driver = this;
    side->fd.Reset(fd);
    Side& s = *side;
    accepted_.push_back(std::move(side));
    if (Watch(s)) Drive(s);
  }
}

bool Driver::Watch(Side& s) {
  struct epoll_event ev {};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = static_cast<Pollable*>(&s);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, s.fd.get(), &ev) != 0) {
    report_.failures.push_back(std::string("epoll_ctl: ") + std::strerror(errno));
    CloseSide(s, false);
    return false;
  }
  return true;
}

void Driver::StartPair(PairRun& p) {
  Side& c = p.client;
  c.driver = this;
  c.pair = &p;
  c.client = true;
  ++in_flight_;
  auto fd = ConnectToZrelayd(p.plan.fault == Fault::kClientStall);
  if (!fd.ok()) {
    Fail(p, "connect to zrelayd: " + fd.error().message());
    c.over = true;
    return MaybeComplete(p);
  }
  c.fd = std::move(fd.value());
  // Garbage and a cut-off ClientHello go out as raw bytes.
  bool tls =
      o_.tls && p.plan.fault != Fault::kTlsGarbage && p.plan.fault != Fault::kTlsHandshakeCut;
  if (tls) c.tls = std::make_unique<TlsStream>(NewClientSsl(client_tls_, c.fd.get(), "localhost"));
  if (!Watch(c)) return MaybeComplete(p);
  if (p.plan.fault == Fault::kConnectReset) {
    After(p.plan.fault_delay, [this, &c] {
      if (!c.over) CloseSide(c, /*reset=*/true);
      MaybeComplete(*c.pair);
    });
  }
  After(o_.pair_deadline, [this, &p] {
    if (p.complete) return;
    p.timed_out = true;
    if (!p.client.over) CloseSide(p.client, true);
    if (p.backend && !p.backend->over) CloseSide(*p.backend, true);
    MaybeComplete(p);
  });
  Drive(c);
}

Result<UniqueFd> Driver::ConnectToZrelayd(bool stalls) {
  const Address& to = zrelayd_->address();
  UniqueFd fd(::socket(to.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error::FromErrno(errno, "socket");
  if (stalls) (void)SetReceiveBuffer(fd.get(), kStalledReceiveBuffer);
  if (::connect(fd.get(), to.sockaddr(), to.length()) != 0 && errno != EINPROGRESS) {
    return Error::FromErrno(errno, "connect to " + to.ToString());
  }
  return fd;
}

void Driver::CloseSide(Side& s, bool reset) {
  if (s.over) return;
  if (reset) (void)SetLingerZero(s.fd.get());
  s.tls.reset();
  s.fd.Reset();  // also leaves epoll: nothing else holds the descriptor
  s.over = true;
}

// The resetting side of a reset fault: it never sends FIN and never closes
// on its own, only when its trigger fires.
bool Driver::Resetter(const Side& s) const {
  if (!s.pair) return false;
  Fault f = s.pair->plan.fault;
  return (s.client && (f == Fault::kClientReset || f == Fault::kConnectReset ||
                       f == Fault::kTlsHandshakeCut)) ||
         (!s.client && f == Fault::kBackendReset);
}

bool Driver::NeverFin(const Side& s) const {
  if (Resetter(s)) return true;
  if (!s.client || !s.pair) return false;
  Fault f = s.pair->plan.fault;
  return f == Fault::kTlsGarbage || f == Fault::kConnectWait;
}

uint64_t Driver::OutTotal(const Side& s) const {
  const PairPlan& plan = s.pair->plan;
  if (s.client && plan.fault == Fault::kTlsHandshakeCut)
    return 1 + plan.fault_at % client_hello_.size();
  if (s.client) return plan.up_bytes;
  if (plan.reply == Reply::kEcho) return s.received;  // grows as bytes arrive
  return plan.down_bytes;
}

// Bytes this side may get, at most: more is a relay bug.
uint64_t Driver::InLimit(const Side& s) const {
  const PairPlan& plan = s.pair->plan;
  if (!s.client) return plan.up_bytes;
  bool answered = plan.fault != Fault::kConnectWait && plan.fault != Fault::kConnectHalfClose &&
                  plan.fault != Fault::kConnectReset;
  return answered ? plan.down_bytes : 0;
}

void Driver::FillOut(const Side& s, uint64_t offset, char* buf, size_t len) const {
  const PairPlan& plan = s.pair->plan;
  if (s.client && plan.fault == Fault::kTlsHandshakeCut) {
    client_hello_.copy(buf, len, offset);
  } else if (s.client && plan.fault == Fault::kTlsGarbage) {
    FillPattern(plan.up_seed, offset, buf, len);
    if (offset == 0 && len > 0 && buf[0] == 0x16) buf[0] = 0x17;  // never a handshake record
  } else if (s.client || plan.reply == Reply::kEcho) {
    FillUp(plan.id, plan.up_seed, offset, buf, len);
  } else {
    FillPattern(plan.down_seed, offset, buf, len);
  }
}

void Driver::FillIn(const Side& s, uint64_t offset, char* buf, size_t len) const {
  const PairPlan& plan = s.pair->plan;
  if (!s.client || plan.reply == Reply::kEcho) {
    FillUp(plan.id, plan.up_seed, offset, buf, len);
  } else {
    FillPattern(plan.down_seed, offset, buf, len);
  }
}

// Reads the header of an accepted connection. Returns true once the side
// belongs to a pair; false while it does not (yet), or when it is over.
bool Driver::Identify(Side& s) {
  while (s.received < kHeaderBytes) {
    ssize_t n = ::recv(s.fd.get(), s.header + s.received, kHeaderBytes - s.received, 0);
    if (n > 0) {
      s.received += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && FromErrno(errno) == Io::kAgain) return false;
    // Ended before it said who it is: a pair zrelayd dropped early (a TLS
    // client that failed its handshake, a client reset during the connect).
    ++report_.backend_unidentified;
    CloseSide(s, false);
    return false;
  }
  int64_t id = ParseHeader(s.header);
  if (id < 0 || static_cast<size_t>(id) >= pairs_.size()) {
    report_.failures.push_back("backend got a connection with a bad header");
    CloseSide(s, true);
    return false;
  }
  PairRun& p = *pairs_[static_cast<size_t>(id)];
  if (p.backend != nullptr) {
    Fail(p, "the backend got a second connection for this pair");
    CloseSide(s, true);
    return false;
  }
  p.backend = &s;
  s.pair = &p;
  return true;
}

bool Driver::StepRead(Side& s) {
  if (s.end != End::kOpen || s.over) return false;
  if (Clock::now() < s.paused_until) return false;
  char buf[kChunk];
  IoResult r;
  if (s.tls) {
    r = FromTls(s.tls->Read(buf, sizeof(buf)));
  } else {
    ssize_t n = ::recv(s.fd.get(), buf, sizeof(buf), 0);
    r = n > 0    ? IoResult{Io::kOk, static_cast<size_t>(n)}
        : n == 0 ? IoResult{Io::kEof}
                 : IoResult{FromErrno(errno), 0, errno};
  }
  switch (r.io) {
    case Io::kOk: {
      const PairPlan& plan = s.pair->plan;
      // A TLS server's answer (a flight, an alert) to raw bytes is not checked.
      bool check = !(s.client &&
                     (plan.fault == Fault::kTlsGarbage || plan.fault == Fault::kTlsHandshakeCut));
      if (check && s.mismatch < 0) {
        uint64_t limit = InLimit(s);
        if (s.received + r.bytes > limit) {
          s.mismatch = static_cast<int64_t>(std::max(s.received, limit));
        } else {
          char want[kChunk];
          FillIn(s, s.received, want, r.bytes);
          for (size_t i = 0; i < r.bytes && s.mismatch < 0; ++i) {
            if (buf[i] != want[i]) s.mismatch = static_cast<int64_t>(s.received + i);
          }
        }
      }
      s.received += r.bytes;
      bool stall = (s.client && plan.fault == Fault::kClientStall) ||
                   (!s.client && plan.fault == Fault::kBackendStall);
      if (stall && !s.stalled && s.received >= plan.fault_at) {
        s.stalled = true;
        s.paused_until = Clock::now() + plan.fault_delay;
        After(plan.fault_delay, [this, &s] { Drive(s); });
      }
      return true;
    }
    case Io::kAgain:
      return false;
    case Io::kEof:
      s.end = End::kEof;
      return true;
    case Io::kTruncated:
      s.end = End::kTruncated;
      return true;
    case Io::kReset:
      s.saw_reset = true;
      s.end = End::kReset;
      s.err = r.err;
      return true;
    case Io::kError:
      s.end = End::kError;
      s.err = r.err;
      return true;
  }
  return false;
}

bool Driver::StepWrite(Side& s) {
  if (s.over || s.fin_sent || s.write_failed || s.saw_reset) return false;
  uint64_t total = OutTotal(s);
  uint64_t split = s.client ? s.pair->plan.client_split : s.pair->plan.backend_split;
  bool peer_fin = s.end == End::kEof || s.end == End::kTruncated;
  uint64_t limit = peer_fin ? total : std::min(total, split);
  if (!s.client && s.pair->plan.reply == Reply::kEcho) limit = total;
  if (s.sent < limit) {
    char buf[kChunk];
    size_t len = static_cast<size_t>(std::min<uint64_t>(limit - s.sent, sizeof(buf)));
    FillOut(s, s.sent, buf, len);
    IoResult r;
    if (s.tls) {
      r = FromTls(s.tls->Write(buf, len));
    } else {
      ssize_t n = ::send(s.fd.get(), buf, len, MSG_NOSIGNAL);
      r = n >= 0 ? IoResult{Io::kOk, static_cast<size_t>(n)} : IoResult{FromErrno(errno), 0, errno};
    }
    if (r.io == Io::kOk) {
      s.sent += r.bytes;
      return r.bytes > 0;
    }
    if (r.io == Io::kAgain) return false;
    s.write_failed = true;
    s.saw_reset = s.saw_reset || r.io == Io::kReset;
    s.err = s.err ? s.err : r.err;
    return true;
  }
  // Everything sent: FIN, unless the plan holds it back.
  bool echo_open = !s.client && s.pair->plan.reply == Reply::kEcho && !peer_fin;
  if (s.sent < total || echo_open || NeverFin(s)) return false;
  if (s.tls && s.pair->plan.fault != Fault::kTlsNoCloseNotify) {
    IoResult r = FromTls(s.tls->Shutdown());
    if (r.io == Io::kAgain) return false;
    if (r.io != Io::kOk) {
      s.write_failed = true;
      s.saw_reset = s.saw_reset || r.io == Io::kReset;
      return true;
    }
  }
  if (::shutdown(s.fd.get(), SHUT_WR) != 0) {
    s.write_failed = true;
    s.saw_reset = s.saw_reset || errno == ENOTCONN;
    return true;
  }
  s.fin_sent = true;
  return true;
}

void Driver::Drive(Side& s) {
  if (s.over) return;
  if (!s.pair && !Identify(s)) return;
  PairRun& p = *s.pair;
  if (s.tls && !s.tls->handshake_done()) {
    IoResult r = FromTls(s.tls->Handshake());
    if (r.io == Io::kAgain) return;
    if (r.io != Io::kOk) {
      s.end = r.io == Io::kReset ? End::kReset : End::kError;
      s.saw_reset = r.io == Io::kReset;
      CloseSide(s, false);
      return MaybeComplete(p);
    }
  }
  bool progress = true;
  for (int turns = 0; turns < 64 && progress && !s.over; ++turns) {
    progress = StepRead(s);
    progress = StepWrite(s) || progress;
    CheckTriggers(p);
    if (s.over) break;
    bool writing_done =
        s.fin_sent || s.write_failed || s.saw_reset || (NeverFin(s) && !Resetter(s));
    if (s.end != End::kOpen && writing_done && !Resetter(s)) {
      CloseSide(s, false);
      break;
    }
    if (s.saw_reset && Resetter(s)) {  // reset by the other side first
      CloseSide(s, false);
      break;
    }
  }
  // Edge-triggered: a side that stopped on its turn cap, or a TLS side with
  // decrypted bytes inside OpenSSL, gets no new edge; it comes back through
  // a zero-delay timer instead.
  bool pending = s.tls && s.tls->pending() > 0 && Clock::now() >= s.paused_until;
  if (!s.over && (progress || pending)) After({}, [this, &s] { Drive(s); });
  MaybeComplete(p);
}

void Driver::CheckTriggers(PairRun& p) {
  const PairPlan& plan = p.plan;
  if (plan.fault == Fault::kClientReset && !p.client.over && p.backend &&
      p.backend->received >= plan.fault_at) {
    CloseSide(p.client, true);
  }
  if (plan.fault == Fault::kTlsHandshakeCut && !p.client.over &&
      p.client.sent >= OutTotal(p.client)) {
    // All or part of a ClientHello is out; leave before the handshake ends.
    CloseSide(p.client, plan.cut_with_reset);
  }
  if (plan.fault == Fault::kBackendReset && p.backend && !p.backend->over &&
      p.client.received >= plan.fault_at) {
    CloseSide(*p.backend, true);
  }
}

bool Driver::BackendOptional(const PairRun& p) const {
  switch (p.plan.fault) {
    case Fault::kTlsGarbage:
    case Fault::kTlsHandshakeCut:
    case Fault::kTlsNoCloseNotify:
    case Fault::kConnectWait:
    case Fault::kConnectHalfClose:
    case Fault::kConnectReset:
      return true;
    default:
      // A flapping backend may have refused or reset the connect.
      return o_.backend == BackendKind::kFlapping && p.client.saw_reset;
  }
}

void Driver::MaybeComplete(PairRun& p) {
  if (p.complete || !p.client.over) return;
  bool backend_over = p.backend ? p.backend->over : BackendOptional(p) || p.timed_out;
  if (!backend_over) return;
  p.complete = true;
  --in_flight_;
}

void Driver::RunTimers() {
  TimePoint now = Clock::now();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    auto fn = std::move(timers_.begin()->second);
    timers_.erase(timers_.begin());
    fn();
  }
}

void Driver::Fail(const PairRun& p, const std::string& what) {
  const PairPlan& plan = p.plan;
  auto side = [](const char* name, const Side* s) {
    if (!s) return std::string(name) + " never connected";
    return std::string(name) + " sent " + std::to_string(s->sent) + (s->fin_sent ? "+FIN" : "") +
           ", got " + std::to_string(s->received) + " ending " + EndName(s->end) +
           (s->saw_reset ? " (saw RST)" : "") +
           (s->mismatch >= 0 ? ", first wrong byte at " + std::to_string(s->mismatch) : "") +
           (s->err ? std::string(" errno ") + std::strerror(s->err) : "");
  };
  report_.failures.push_back(
      "pair " + std::to_string(plan.id) + " (" + FaultName(plan.fault) + ", " +
      ReplyName(plan.reply) + ", up " + std::to_string(plan.up_bytes) + ", down " +
      std::to_string(plan.down_bytes) + ", fault at " + std::to_string(plan.fault_at) +
      "): " + what + "; " + side("client", &p.client) + "; " + side("backend", p.backend));
}

// Both peers' view of one pair, and what zrelayd must have logged for it.
void Driver::Evaluate(PairRun& p, std::vector<CloseExpectation>& expectations) {
  const PairPlan& plan = p.plan;
  const Side& c = p.client;
  const Side* b = p.backend;
  ++report_.faults[FaultName(plan.fault)];
  // A pair that failed here may have any close line, or none.
  auto failed = [&](const std::string& what) {
    Fail(p, what);
    expectations.push_back({kNotDone, false});
  };
  if (p.timed_out) return failed("did not finish within the pair deadline");
  if (c.mismatch >= 0 || (b && b->mismatch >= 0)) return failed("bytes differ");
  auto clean = [&](const Side* s, uint64_t in, uint64_t out) {
    return s && s->end == End::kEof && !s->saw_reset && s->received == in && s->sent == out &&
           s->fin_sent;
  };
  bool client_clean = clean(&c, plan.down_bytes, plan.up_bytes);
  bool backend_clean = clean(b, plan.up_bytes, plan.down_bytes);
  CloseExpectation e;
  e.required = true;
  switch (plan.fault) {
    case Fault::kNone:
    case Fault::kClientHalfClose:
    case Fault::kBackendHalfClose:
    case Fault::kClientStall:
    case Fault::kBackendStall:
      if (o_.backend == BackendKind::kFlapping && c.saw_reset && !b && c.received == 0) {
        e.causes = kReset | kConnectFailed;  // refused, or reset in the closed listener's queue
        break;
      }
      if (!client_clean || !backend_clean)
        return failed("a normal pair did not end byte-exact with FIN both ways");
      e = {kDone, true, plan.up_bytes, plan.down_bytes};
      ++report_.exact_pairs;
      break;
    case Fault::kClientReset:
      if (!b || !b->saw_reset) return failed("the backend did not see the client's reset as RST");
      e.causes = kReset;
      break;
    case Fault::kBackendReset:
      if (!c.saw_reset) return failed("the client did not see the backend's reset as RST");
      e.causes = kReset;
      break;
    case Fault::kConnectWait:
    case Fault::kConnectHalfClose:
      if (!c.saw_reset || b)
        return failed("the client did not get RST for a failed backend connect");
      e.causes = kConnectFailed;
      break;
    case Fault::kConnectReset:
      e = {kReset, false};  // zrelayd may not have accepted it before the RST
      break;
    case Fault::kTlsGarbage:
      e.causes = kNotDone;
      break;
    case Fault::kTlsNoCloseNotify:
      // Every byte the client sent reaches the backend, then its FIN: a
      // missing close_notify is reported, never turned into lost data.
      if (!b || b->received != plan.up_bytes || b->end != End::kEof || b->saw_reset)
        return failed("the backend did not get a truncating client's bytes and FIN");
      e.causes = CauseBit("truncated");
      break;
    case Fault::kTlsHandshakeCut:
      e = {kNotDone, false};
      break;
  }
  expectations.push_back(e);
}

void Driver::CheckZrelayd(const std::vector<CloseExpectation>& expectations) {
  auto fail = [&](const std::string& what) { report_.failures.push_back("zrelayd: " + what); };
  // Every pair is closed on the driver's side; zrelayd must let go of
  // everything it held for them.
  TimePoint until = Clock::now() + seconds(15);
  std::string diff;
  FdCensus now;
  do {
    std::this_thread::sleep_for(milliseconds(20));
    auto census = TakeFdCensus(zrelayd_->pid());
    if (!census.ok()) return fail(census.error().message());
    now = census.value();
    diff = NonPipeDifference(baseline_, now);
  } while (!diff.empty() && Clock::now() < until);
  if (!diff.empty()) fail("descriptors not back to their baseline: " + diff);
  // Pipes stay pooled after use, but whole and empty (its stderr, in the
  // baseline, is neither).
  for (const auto& [inode, pipe] : now.pipes) {
    if (baseline_.pipes.count(inode) != 0) continue;
    if (pipe.ends != 2) fail("holds one end of " + inode);
    if (pipe.bytes > 0) fail(std::to_string(pipe.bytes) + " bytes left in " + inode);
  }

  auto exit = zrelayd_->Stop(seconds(30));
  if (!exit.ok()) return fail(exit.error().message());
  std::string sanitizer = zrelayd_->SanitizerReport();
  if (!sanitizer.empty()) fail("sanitizer report:\n" + sanitizer);
  if (exit.value() != 0) fail("exit status " + std::to_string(exit.value()));

  std::vector<CloseLine> lines;
  uint64_t up = 0, down = 0;
  for (const std::string& l : zrelayd_->Lines()) {
    CloseLine c;
    if (!ParseCloseLine(l, &c)) continue;
    ++report_.causes[c.cause];
    up += c.up;
    down += c.down;
    lines.push_back(c);
  }
  for (const std::string& problem : CheckCloseLines(expectations, lines)) fail(problem);

  report_.totals = ParseTotals(zrelayd_->TotalsLine());
  auto& t = report_.totals;
  if (t.empty()) return fail("no totals line after SIGTERM");
  auto expect = [&](const char* name, uint64_t want) {
    if (t[name] != want) {
      fail(std::string("totals: ") + name + " " + std::to_string(t[name]) + ", want " +
           std::to_string(want));
    }
  };
  expect("accepted", lines.size());
  expect("pairs closed", lines.size());
  expect("connect failures", report_.causes["connect-failed"]);
  expect("bytes client->backend", up);
  expect("backend->client", down);
  // Nothing is open any more, so nothing may still be in use.
  for (const auto& [name, n] : t) {
    if (name.size() > 7 && name.compare(name.size() - 7, 7, " in use") == 0)
      expect(name.c_str(), 0);
  }
  if (o_.tls || o_.mode == "copy") expect("spliced", 0);
  if (!o_.tls && o_.mode == "splice" && t["pipe pool exhausted"] == 0) expect("copied", 0);
}

void Driver::Run() {
  report_.seed = o_.seed;
  if (!Setup()) return;
  PlanOptions po{o_.backend, o_.tls, o_.clean_only, o_.max_payload, o_.max_stall_payload};
  for (PairPlan& plan : MakePlans(po, o_.pairs, o_.seed)) {
    auto p = std::make_unique<PairRun>();
    p->plan = plan;
    pairs_.push_back(std::move(p));
  }
  if (o_.backend == BackendKind::kFlapping) {
    flapping_ = true;
    After(milliseconds(100), [this] { Flap(false); });
  }
  size_t next = 0;
  // Generous: every pair has its own deadline well inside this one.
  TimePoint run_deadline = Clock::now() + o_.pair_deadline + seconds(10) * (1 + o_.pairs / 100);
  auto busy = [&] {
    if (next < pairs_.size() || in_flight_ > 0) return true;
    return std::any_of(accepted_.begin(), accepted_.end(), [](const auto& s) { return !s->over; });
  };
  TimePoint next_census{};
  while (busy() && Clock::now() < run_deadline) {
    while (next < pairs_.size() && in_flight_ < o_.concurrency) StartPair(*pairs_[next++]);
    RunTimers();
    int wait_ms = 50;
    if (!timers_.empty()) {
      auto ms =
          std::chrono::duration_cast<milliseconds>(timers_.begin()->first - Clock::now()).count();
      wait_ms = static_cast<int>(std::clamp<int64_t>(ms, 0, 50));
    }
    if (Clock::now() >= next_census) {
      if (auto census = TakeFdCensus(zrelayd_->pid()); census.ok()) {
        report_.peak_fds = std::max(report_.peak_fds, census->total);
      }
      next_census = Clock::now() + milliseconds(20);
    }
    struct epoll_event events[256];
    int n = ::epoll_wait(epoll_.get(), events, 256, wait_ms);
    for (int i = 0; i < n; ++i) static_cast<Pollable*>(events[i].data.ptr)->OnEvent();
  }
  if (busy()) {
    report_.failures.push_back("the run did not finish before its deadline (" +
                               std::to_string(in_flight_) + " pairs in flight)");
  }
  for (auto& s : accepted_) {
    if (!s->over) CloseSide(*s, true);
  }
  std::vector<CloseExpectation> expectations;
  for (auto& p : pairs_) {
    p->timed_out = p->timed_out || !p->complete;
    Evaluate(*p, expectations);
  }
  timers_.clear();
  backend_listener_.Reset();
  filler_.Reset();
  if (report_.failures.size() > 50) report_.failures.resize(50);  // the first ones tell the story
  CheckZrelayd(expectations);
  if (o_.tls) testing::RemoveTestCerts(certs_);
}

}  // namespace

std::string ChaosReport::Summary() const {
  std::string s = "seed " + std::to_string(seed) + ": " + std::to_string(exact_pairs) +
                  " pairs byte-exact; faults:";
  for (const auto& [name, n] : faults) s += " " + name + " " + std::to_string(n);
  s += "; backend connections that never named their pair: " + std::to_string(backend_unidentified);
  s += "; zrelayd closes:";
  for (const auto& [name, n] : causes) s += " " + name + " " + std::to_string(n);
  s += "; totals:";
  for (const auto& [name, n] : totals) s += " " + name + "=" + std::to_string(n);
  s += "; " + std::to_string(failures.size()) + " failure(s)";
  for (const std::string& f : failures) s += "\n  " + f;
  return s;
}

const std::vector<Scenario>& Scenarios() {
  // Pairs against the misbehaving backends take a connect timeout or a
  // listener flap each, so they get fewer.
  static const std::vector<Scenario> scenarios = {
      {"splice", "splice", false, BackendKind::kNormal, 1},
      {"copy", "copy", false, BackendKind::kNormal, 1},
      {"auto", "auto", false, BackendKind::kNormal, 1},
      {"tls", "splice", true, BackendKind::kNormal, 1},
      {"black-hole", "splice", false, BackendKind::kBlackHole, 0.15},
      {"flapping", "auto", false, BackendKind::kFlapping, 0.5},
  };
  return scenarios;
}

bool ApplyScenario(const std::string& name, ChaosOptions* options) {
  for (const Scenario& s : Scenarios()) {
    if (s.name != name) continue;
    options->mode = s.mode;
    options->tls = s.tls;
    options->backend = s.backend;
    return true;
  }
  return false;
}

ChaosReport RunChaos(const ChaosOptions& options) {
  ChaosReport report;
  Driver(options, report).Run();
  return report;
}

}  // namespace zrelay::chaos
