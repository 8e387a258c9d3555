// zrelay's public face: hand it two connected legs, or a listener and its
// backends, and it moves the bytes between them.
//
//   auto engine = zrelay::Engine::Start({.workers = 2, .mode = RelayMode::kAuto});
//   engine.value()->Pipe(std::move(a), std::move(b),
//                        [](const PairStats& s) { /* on the pair's worker */ });
//
// Plain<->plain directions move through kernel pipes with splice() (zero
// copy); a TLS leg moves through SSL_read/SSL_write and ring buffers. Every
// pair lives on one worker thread; the data path takes no lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/address.h"
#include "engine/cidr.h"
#include "engine/clock.h"
#include "engine/io_backend.h"
#include "engine/result.h"
#include "engine/unique_fd.h"
#include "relay/balancer.h"        // BalancePolicy, kMaxBackendWeight
#include "relay/health_options.h"  // HealthCheckOptions
#include "relay/metrics.h"

typedef struct ssl_st SSL;          // NOLINT: OpenSSL's own forward declaration
typedef struct ssl_ctx_st SSL_CTX;  // NOLINT

namespace zrelay {

enum class RelayMode {
  kSplice,  // socket -> pipe -> socket; copy only when the pipe pool is dry
  kCopy,    // user-space ring buffers with readv/writev
  kAuto,    // start on copy, move a direction to splice once it sees bulk
};
// "splice", "copy", "auto": as zrelayd's --mode spells them.
const char* RelayModeName(RelayMode mode);

// Why a pair closed.
enum class CloseCause {
  kDone,           // both directions finished with FIN (or close_notify)
  kReset,          // a leg was reset (ECONNRESET/EPIPE) or the peer aborted
  kTimeout,        // idle timeout, or a TLS handshake that did not finish
  kError,          // any other error; PairStats::error has errno and detail
  kConnectFailed,  // the backend refused, timed out or was unreachable
  kDrained,        // still open at Drain()'s deadline, closed by the engine
  kTruncated,      // finished, but a TLS leg's peer left without close_notify
                   // (its EOF was passed on; the data may be cut short)
};
// A TLS peer that closes its socket without close_notify reaches the relay
// as EOF or, when its socket still held unread input (the relay's
// close_notify, bytes it did not read) or got more (OpenSSL's alert for
// its EOF), as a reset; which one comes first is timing. The cause does not
// depend on it:
//  - kTruncated: its EOF came (a reset after it changes nothing), or it
//    reset once the other leg's stream towards it had ended with every
//    byte written to its socket, and with nothing it sent still in flight
//    (nothing was owed to it, nothing of its own is lost: an IMAP client's
//    LOGOUT, answer and close, whether the backend closes first or last).
//    A kTruncated that a reset showed is still passed on to the other leg as
//    a reset: from there a careless close cannot be told from an abort in
//    the middle of the peer's stream, which must not look complete;
//  - kReset: it reset while bytes towards it were still in flight or the
//    other leg's stream towards it was still open (data was lost), or
//    with bytes it sent still in flight.
const char* CloseCauseName(CloseCause cause);

// One side of a pair: a connected socket and, for TLS, its SSL object.
// The engine takes ownership of both (it calls SSL_free).
struct Leg {
  UniqueFd fd;
  // null: plain. Otherwise the leg's TLS session, which must be:
  //  - reading and writing `fd` itself: SSL_set_fd(ssl, fd) on this very
  //    descriptor (not a dup of it), or a BIO chain that ends in it;
  //  - a server or a client: SSL_set_accept_state / SSL_set_connect_state
  //    called (ssl/tls_context.h: NewServerSsl, NewClientSsl do both);
  //  - at any point of its handshake: not started, part way, or finished
  //    (by the embedder, on a blocking or non-blocking socket). An
  //    unfinished one is finished by the engine under
  //    EngineOptions::handshake_timeout; PairStats::tls_version and sni
  //    come from the session either way;
  //  - not failed, and without a close_notify sent or received.
  // Its SSL_CTX may be any: the engine sets on the SSL itself the modes it
  // relays with (ssl/tls_stream.h SetStreamModes: partial writes, a moving
  // write buffer, released idle buffers, and an EOF without close_notify
  // reported as such, never as a clean end), so an SSL from a bare SSL_new
  // works like one from ssl/tls_context.h. A TLS leg's directions use the
  // copy path (no kernel TLS on this kernel).
  SSL* ssl = nullptr;
  // Bytes already read from this leg and not yet passed on (a protocol
  // phase that read past what it consumed): the other leg gets them before
  // anything read from this leg from here on, and PairStats counts them.
  std::string preread{};
};

// The two ways through a pair. For a listener's pairs, A is the client.
enum class Flow { kAToB, kBToA };

// A token bucket for one way of a pair: at most `bytes_per_second` on
// average, with bursts of up to `burst` bytes after a quiet spell. Reading
// the source stops while the bucket is empty (the sender is slowed by TCP's
// own flow control, nothing is dropped) and resumes when a timer on the
// worker's wheel says it holds tokens again.
struct RateLimit {
  uint64_t bytes_per_second = 0;  // 0: unlimited
  uint64_t burst = 0;             // 0: bytes_per_second / 10 (at least 16 KiB)
};

// Sees every byte of one way of a pair, in order, and says what the other
// leg gets instead: the same bytes (inspection), other bytes, more, fewer
// or none. One object per pair and way, called on the pair's worker only,
// so it needs no lock. A pair with a filter moves that way through user
// space (copy), never splice.
class Filter {
 public:
  virtual ~Filter() = default;
  // `in`: bytes just read from the source. Append to `out` what the
  // destination should get for them (now or never: the relay keeps no
  // other copy of `in`).
  virtual void OnData(std::string_view in, std::string& out) = 0;
  // The source ended (FIN or close_notify): a last chance to append what
  // the filter held back. The destination's FIN follows it.
  virtual void OnEnd(std::string& /*out*/) {}
};

// Per-pair behaviour beyond plain relaying (libevent's bufferevent knobs).
// Engine::Pipe takes one per pair, ListenOptions::pair one per listener
// (each of its pairs gets these settings and filters of its own).
struct PairOptions {
  RateLimit a_to_b{};
  RateLimit b_to_a{};
  // Bytes one way may hold in flight (read, not yet written) before the
  // relay stops reading its source; reading resumes once the destination
  // took enough to leave `low_watermark` or fewer. 0: the whole ring
  // (EngineOptions::buffer_size) or pipe, and half of that. A high
  // watermark above buffer_size is an error (Listen; Pipe closes the pair).
  size_t high_watermark = 0;
  size_t low_watermark = 0;
  // Makes a new pair's filter for one way; null (or a null result): that
  // way is not filtered. Called on the pair's worker as the pair starts (a
  // listener's workers may call it at the same time).
  std::function<std::unique_ptr<Filter>(Flow flow)> filter{};
};

struct PairStats {
  uint64_t a_to_b = 0;  // bytes delivered from leg A to leg B
  uint64_t b_to_a = 0;
  CloseCause cause = CloseCause::kDone;
  int error = 0;       // errno (or 0) for kError / kReset / kConnectFailed,
                       // and for kTruncated the reset that showed it (or 0)
  std::string detail;  // human-readable cause; empty for kDone
  Duration age{};      // from Pipe()/accept to close
  size_t worker = 0;
  // The endpoint the pair connected to (or tried last); for
  // Connection::Pipe, leg B's peer; empty for Engine::Pipe().
  Address backend{};
  // Listener pairs: the client's address; for Connection::Pipe, leg A's
  // peer; empty for Engine::Pipe().
  Address client{};
  // Leg A's TLS, when it is a TLS leg that finished its handshake: the
  // version ("TLSv1.3") and the server name the client asked for (SNI;
  // empty without one). Both empty for a plain leg.
  std::string tls_version{};
  std::string sni{};
};

using OnClose = std::function<void(const PairStats&)>;

class Connection;
struct ConnectionDeleter {
  void operator()(Connection* connection) const;
};
// A connection in its protocol phase (relay/connection.h). Destroying it
// closes the socket (at the end of the loop turn when called from one of
// the connection's own callbacks).
using ConnectionPtr = std::unique_ptr<Connection, ConnectionDeleter>;
using OnConnection = std::function<void(ConnectionPtr connection)>;

struct EngineOptions {
  int workers = 0;  // 0: one per online CPU
  bool pin_cpus = false;
  RelayMode mode = RelayMode::kSplice;
  size_t pipe_size = 1 << 20;                // F_SETPIPE_SZ request; the kernel's answer is used
  size_t pipe_pool_cap = 1024;               // pipes per worker (in use + pooled)
  size_t buffer_size = 64 << 10;             // ring buffer per direction in flight
  size_t buffers_cap = 8192;                 // ring buffers per worker (in use + pooled)
  size_t budget_per_event = 256 << 10;       // bytes per direction per readiness turn
  Duration idle_timeout{};                   // 0: none. Closes pairs that moved nothing this long
  Duration handshake_timeout = seconds(10);  // TLS legs zrelay handshakes
  // What each worker's loop waits with: epoll, or io_uring (one ring per
  // worker; every request of a loop turn goes to the kernel in one
  // io_uring_enter). kUring fails Start() when this process may not use
  // io_uring, naming why; kAuto then falls back to epoll. Engine::io() says
  // which one runs.
  IoBackend io = IoBackend::kEpoll;
};

// Fields added after the first three have default member initializers, so
// that `BackendOptions{address, tls, sni}` stays warning-free under -Wextra.
struct BackendOptions {
  Address address;  // an IP literal or unix path; unused when `host` is set
  // non-null: originate TLS to the backend. The engine holds its own
  // reference (SSL_CTX_up_ref) while the listener or its pairs need it.
  SSL_CTX* tls = nullptr;
  // Server name sent and verified (TLS only); empty with `host`: the host name.
  std::string sni;
  // A host name ("app1.internal"): resolved by the engine off its loops, at
  // Listen() and every ListenOptions::resolve_interval. Each address it has
  // is an endpoint of the pool with this backend's weight and TLS settings.
  // A name with no address at Listen() fails it (naming the host); a lookup
  // that fails later keeps the addresses the name had, and says so through
  // on_event. With `tls`, each address is verified against the host name.
  std::string host{};
  int port = 0;         // with `host`: 1..65535
  uint32_t weight = 1;  // 1..kMaxBackendWeight
  // Write a PROXY protocol header (relay/proxy_protocol.h) to this backend
  // before any relayed byte: the client's address (as a PROXY header from
  // the client gave it, else the peer's) and the address it connected to.
  enum class SendProxy { kNone, kV1, kV2 };
  SendProxy send_proxy = SendProxy::kNone;
};

// ListenOptions::route_by: what picks a client's backends before any is
// connected.
enum class RouteBy {
  kNone,  // the listener's backends
  kSni,   // the server name of the client's TLS ClientHello, peeked, not
          // consumed: the TLS stream reaches the backend untouched (spliced
          // when plain-to-plain). Not with ListenOptions::tls.
};

// A route: the clients whose server name matches go to its own pool.
struct RouteOptions {
  std::string name{};  // for logs and metrics
  // Exact names ("a.example") and wildcards ("*.b.example": one label or
  // more before ".b.example", never "b.example" itself). Case-insensitive.
  std::vector<std::string> server_names{};
  std::vector<BackendOptions> backends{};  // at least one
  BalancePolicy balance = BalancePolicy::kRoundRobin;
};

// One line an operator wants to see: a backend marked down or up (and why),
// a host name's addresses changing, a client closed because no backend is
// healthy. Any thread; keep it cheap (zrelayd prints it).
using OnListenerEvent = std::function<void(const std::string& line)>;

// Resolves a host backend's name to its addresses, each with `port`.
// ListenOptions::resolve replaces the engine's getaddrinfo (a service
// registry, a test's table). Called from Listen() and from the listener's
// resolver thread, never from a worker.
using ResolveFunction =
    std::function<Result<std::vector<Address>>(const std::string& host, int port)>;

// What a listener carries.
enum class Protocol {
  kTcp,  // streams: each accepted client becomes a pair with a backend
  kUdp,  // datagrams: each client address becomes a flow to a backend
};
// "tcp", "udp": as zrelayd's config spells them.
const char* ProtocolName(Protocol protocol);

// Socket settings of a UDP listener (ListenOptions::protocol = kUdp).
struct UdpOptions {
  // SO_RCVBUF / SO_SNDBUF of every listening socket and flow socket, in
  // bytes; 0: the kernel's default. The kernel caps them at
  // net.core.rmem_max / wmem_max (a process without CAP_NET_ADMIN gets
  // the cap, not an error).
  size_t receive_buffer = 0;
  size_t send_buffer = 0;
  // Datagrams the endpoint sends back for each datagram of a client (DNS:
  // 1). Once a flow's endpoint has sent that many for every datagram the
  // flow carried to it, the flow ends (kDone) at once instead of waiting out
  // idle_timeout: clients that take a new source port for every request
  // would otherwise pile up a socket each until then. 0: flows end only
  // when idle.
  uint32_t responses = 0;
};
// A UDP flow's idle timeout when neither its listener (idle_timeout) nor
// the engine sets one: a flow must end.
inline constexpr Duration kDefaultUdpIdleTimeout = seconds(30);

// A UDP listener (protocol = kUdp) relays datagrams. A flow is a client's
// address and port: its first datagram picks a backend endpoint (the
// listener's balance policy; maglev hashes the client's address) and opens
// a socket connected to it; every later datagram of the flow goes to that
// endpoint, and every datagram the endpoint sends back reaches the client
// from the address the client sent to. Datagram boundaries are kept (up to
// 65,507 bytes of payload), nothing is truncated or merged. Each worker
// binds its own SO_REUSEPORT socket, so a flow stays on one worker, whose
// flow table takes no lock. Bursts move with recvmmsg/sendmmsg; a
// datagram the kernel dropped on a full listening socket is counted
// (SO_RXQ_OVFL). A flow ends when it has moved nothing for idle_timeout,
// when its endpoint answers with an ICMP error (port unreachable: the
// endpoint counts a failed connect towards ejection), at Drain's deadline,
// or when the listener is stopped and the flow has been quiet for a
// second (replies in flight still get through); on_close reports it, with
// its byte counts, as kTimeout, kConnectFailed, kDrained or kDone.
//
// The fields that apply: address, extra_addresses, backends (address or
// host, port and weight), balance, max_connections (flows open at once
// across the listener's workers and addresses; past it, a new client's
// datagrams are dropped and counted; 0: derived from RLIMIT_NOFILE as for
// TCP, one socket per flow), retries (a flow whose endpoint answered its
// first datagram with an ICMP error before any reply sends that datagram
// to another endpoint, up to `retries` times), eject_after and eject_for,
// health (active checks probe the backend's address over TCP, as for a
// TCP listener), resolve_interval, resolve, idle_timeout (unset: the
// engine's, or 30 s when that is 0: a flow must end), on_close, on_event,
// inherited_sockets, name and udp. Listen fails, naming the field, for
// tls, on_accept, proxy_protocol, route_by or routes, rate limits or
// filters (pair), or a backend with tls or send_proxy.

struct ListenOptions {
  Address address;
  Protocol protocol = Protocol::kTcp;
  UdpOptions udp{};
  std::vector<BackendOptions> backends;  // the pool: at least one
  // non-null: terminate TLS from clients. The engine holds its own reference
  // while the listener or its pairs need it: the caller may free its own
  // once Listen or Reconfigure returned.
  SSL_CTX* tls = nullptr;
  Duration connect_timeout = seconds(5);
  int backlog = 1024;
  OnClose on_close;  // every accepted client's pair, on its worker
  // Pairs of this listener open at once, across workers. At the limit its
  // workers stop calling accept: new clients wait in the kernel's backlog
  // (nothing is refused or reset) and accepting resumes as soon as one of
  // its pairs closes. 0: derived from the soft RLIMIT_NOFILE when Listen()
  // runs, so the listener pauses before fds run out instead of accepting
  // clients it then resets (Engine::MaxConnections says what it got):
  //   (soft limit - fds open at Listen() - 64 spare - pipe reserve) / 2
  // Each pair holds two sockets (client and backend). What is open at
  // Listen() (the engine's epoll and wake fds, listening sockets, the
  // embedder's files, pairs already open) is taken off, and 64 fds stay
  // spare for what opens later. In splice and auto modes pipes hold fds too:
  // 2 per pipe, up to pipe_pool_cap per worker, but at most half of what is
  // left (a pipe2() that fails only makes that direction copy). Listen()
  // fails when no pair fits. The fd table is the whole process's: with
  // several listeners, or pairs started with Pipe(), set it explicitly.
  // With extra_addresses, each address has max_connections slots of its
  // own (a derived limit is split evenly between them).
  size_t max_connections = 0;
  // How long a worker stops accepting after running out of fds, at accept
  // or at the backend connect's socket() (EMFILE/ENFILE).
  Duration fd_exhausted_retry = milliseconds(100);

  std::string name{};  // for logs and details ("web"); may be empty
  // More addresses accepting into the same pool (e.g. IPv4 and IPv6): same
  // options, one backend pool.
  std::vector<Address> extra_addresses{};
  BalancePolicy balance = BalancePolicy::kRoundRobin;
  // When a backend connect fails (refused, unreachable, timed out), the pair
  // tries another healthy endpoint, up to `retries` more, all within
  // connect_timeout in total.
  int retries = 0;
  // Passive health: this many consecutive connect failures take an endpoint
  // out for `eject_for`; then it gets traffic again (one success resets).
  // 0: never. A pool of a single endpoint never ejects it (its clients would
  // only trade a connect error for "no healthy backend"). An endpoint's
  // health starts afresh when a host's new addresses make a new pool.
  int eject_after = 3;
  Duration eject_for = seconds(10);
  std::optional<HealthCheckOptions> health{};  // unset: no active checks
  Duration resolve_interval = seconds(30);
  // Per-listener overrides of EngineOptions (unset: the engine's value).
  std::optional<Duration> idle_timeout{};
  std::optional<Duration> handshake_timeout{};
  OnListenerEvent on_event{};
  // How host backends are resolved; unset: getaddrinfo.
  ResolveFunction resolve{};
  // Listening sockets to take over instead of binding (a zero-downtime
  // upgrade: the sockets a running process handed over, from
  // Engine::ListeningSockets). Each of the listener's addresses uses the
  // sockets here bound to it (getsockname), dup()ed, and binds only when
  // none is; the rest are ignored. Not owned: the caller closes its own
  // copies. TCP: socket k is watched by worker k % workers, so with more
  // sockets than workers a worker watches several (no queue is left
  // unwatched); with fewer, the missing ones are bound into the same
  // SO_REUSEPORT group (the sockets need SO_REUSEPORT and the same user, as
  // zrelay's own have). Unix: every worker watches each one. Sockets one
  // holder closes go on accepting for the others: nothing shuts a listening
  // socket down or unlinks its path.
  std::vector<int> inherited_sockets{};

  // PROXY protocol from clients: each must start with a PROXY header (v1
  // or v2, told apart); its source address is the client's from then on
  // (balancing, logs, PairStats::client, a PROXY header sent on). A v2
  // LOCAL header keeps the connection's own address. A malformed,
  // truncated or oversized header, or none within preamble_timeout, closes
  // the client (kError / kTimeout) before any backend is connected.
  bool proxy_protocol = false;
  // With proxy_protocol: the peers allowed to send a header; a connection
  // from any other address is closed at accept. Empty: any peer.
  std::vector<CidrBlock> proxy_protocol_from{};
  // Routing by what the client sends first (RouteBy). Clients whose name
  // matches no route, or that send no server name, use `backends`.
  RouteBy route_by = RouteBy::kNone;
  std::vector<RouteOptions> routes{};
  // How long a client has to send what the listener reads before choosing
  // a backend (the PROXY header, the ClientHello for route_by).
  Duration preamble_timeout = seconds(5);

  // Rate limits, watermarks and filters for every pair of this listener.
  PairOptions pair{};

  // Set: the listener connects no backend itself. Each accepted client is
  // handed to `on_accept` as a Connection (relay/connection.h) on the
  // worker that accepted it, for a protocol phase of the embedder's own
  // (a greeting, STARTTLS, a login that picks the backend), which ends in
  // Connection::Pipe() or in dropping the Connection. With `tls`, the
  // client's TLS handshake is done first (under handshake_timeout). Then
  // `backends` must be empty, and proxy_protocol and route_by unset. A
  // client holds its max_connections slot until its Connection, or the
  // pair it became, is gone. `on_close` is not called for such clients
  // (Connection::Pipe takes its own).
  OnConnection on_accept{};
};

// A listener's listening socket, for handing to another process.
struct ListeningSocket {
  Address address;  // as bound
  UniqueFd fd;      // a dup(): the engine keeps its own
};

using ListenerId = uint32_t;

// What UDP listeners did on a worker (or, in EngineStats::total, on all).
struct UdpStats {
  uint64_t flows_open = 0;
  uint64_t flows_created = 0;
  uint64_t datagrams_client_to_backend = 0;
  uint64_t datagrams_backend_to_client = 0;
  uint64_t bytes_client_to_backend = 0;
  uint64_t bytes_backend_to_client = 0;
  // Datagrams the kernel dropped because a listening socket's receive
  // buffer was full (SO_RXQ_OVFL: counted when the socket's next datagram
  // arrives): raise UdpOptions::receive_buffer.
  uint64_t receive_drops = 0;
  // Datagrams of new clients dropped because max_connections flows were open.
  uint64_t flow_cap_drops = 0;
  // ICMP errors from an endpoint (port or host unreachable) on a flow.
  uint64_t backend_unreachable = 0;
  // Datagrams a send failed for (a full socket buffer, an error): UDP drops
  // them rather than wait.
  uint64_t send_drops = 0;
};

struct WorkerStats {
  uint64_t pairs_open = 0;
  uint64_t connections_open = 0;  // Connections in their protocol phase (relay/connection.h)
  uint64_t pairs_closed = 0;
  uint64_t accepted = 0;
  uint64_t connect_failures = 0;
  uint64_t bytes_a_to_b = 0;
  uint64_t bytes_b_to_a = 0;
  uint64_t bytes_spliced = 0;  // moved through pipes
  uint64_t bytes_copied = 0;   // moved through ring buffers
  uint64_t pipes_in_use = 0;
  uint64_t pipes_pooled = 0;
  uint64_t pipe_pool_exhausted = 0;  // a direction wanted a pipe and fell back to copy
  uint64_t buffers_in_use = 0;
  uint64_t buffers_pooled = 0;
  uint64_t splice_switches = 0;  // auto mode: directions moved to splice
  // How the listeners fared on this worker (summed over listeners):
  // accept ran out of fds (EMFILE/ENFILE/ENOBUFS/ENOMEM), accepting paused
  // for fd_exhausted_retry;
  uint64_t accept_fd_exhausted = 0;
  // accepting stopped because max_connections pairs were open (it resumes
  // when one of them closes);
  uint64_t accept_paused_max_connections = 0;
  // a backend connect's socket() ran out of fds (EMFILE/ENFILE): that pair
  // ended kConnectFailed and accepting paused for fd_exhausted_retry.
  uint64_t backend_fd_exhausted = 0;
  // Backend connects tried again on another endpoint after one failed
  // (ListenOptions::retries); connect_failures counts every failed try.
  uint64_t backend_retries = 0;
  // Clients closed at once because no endpoint of their pool was healthy.
  uint64_t no_healthy_backend = 0;
  // UDP listeners' flows (ListenOptions::protocol = kUdp), summed over them.
  UdpStats udp{};
};

struct EngineStats {
  WorkerStats total;
  std::vector<WorkerStats> workers;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> Start(const EngineOptions& options);
  ~Engine();  // closes every pair (without on_close) and joins the workers
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Relays between two connected legs until both directions finish. Any
  // thread. The engine owns the legs from here on; `on_close` runs exactly
  // once, on the pair's worker. Pairs are spread across workers round-robin
  // (or stay on the caller's worker when called from one).
  void Pipe(Leg a, Leg b, OnClose on_close = {});
  void Pipe(Leg a, Leg b, OnClose on_close, const PairOptions& options);

  // Adopts a connected socket for a protocol phase on a worker's loop
  // (relay/connection.h): `ready` runs there with the Connection, which
  // may read, write, start TLS, connect a backend, and at last Pipe().
  // Any thread; `ready` never runs inside Adopt() itself.
  void Adopt(UniqueFd fd, OnConnection ready);

  // Binds the address on every worker (SO_REUSEPORT), or adopts
  // options.inherited_sockets, then for each client: connect a backend,
  // relay, report through options.on_close.
  Result<ListenerId> Listen(const ListenOptions& options);
  // The bound address of a listener (the kernel's port when asked for 0).
  Result<Address> ListenAddress(ListenerId id) const;
  // Every bound address of a listener: its address, then its
  // extra_addresses, in the order given.
  Result<std::vector<Address>> ListenAddresses(ListenerId id) const;
  // A listener's max_connections: as given, or as derived from
  // RLIMIT_NOFILE when the options said 0.
  Result<size_t> MaxConnections(ListenerId id) const;

  // Applies `options` to listener `id` for the clients it accepts from now
  // on: backends, balancing, health, timeouts, TLS, limits, callbacks. A
  // new listener with `options` adopts the old one's listening sockets
  // (dup()s: their queues never close, so no client is refused or reset)
  // and accepts before the old one stops; the id stays the same. Pairs
  // already open keep what they started with (backend pool, TLS contexts,
  // on_close) and finish; they hold slots of the old max_connections, not
  // the new one. A derived max_connections (0) is derived again from the
  // fds open now. The addresses (address, extra_addresses) must be the
  // listener's, each as given to Listen or as bound (the kernel's port for
  // port 0); options.inherited_sockets is not used. On error (other
  // addresses, bad options, a host backend that does not resolve, a Drain
  // begun) the listener runs on unchanged. Any non-worker thread.
  Status Reconfigure(ListenerId id, const ListenOptions& options);
  // Stops listener `id` accepting and closes its listening sockets (its own
  // descriptors: sockets another holder adopted go on accepting there). Its
  // open pairs finish as usual (their on_close still runs); the id is
  // unknown from here on. Any non-worker thread.
  Status Close(ListenerId id);
  // dup()s of listener `id`'s listening sockets: one per worker per TCP
  // address (or as many as it adopted, when that was more), one per unix
  // address. What ListenOptions::inherited_sockets takes.
  Result<std::vector<ListeningSocket>> ListeningSockets(ListenerId id) const;

  // Snapshot of counters, gathered from every worker. Any non-worker thread.
  EngineStats Stats() const;
  // Live counters per listener, backend and worker (relay/metrics.h), read
  // without stopping or waiting for any worker. Any non-worker thread: it
  // waits out a Listen, Close or Drain that is adding or stopping a
  // listener, and those wait for the workers.
  MetricsSnapshot Metrics() const;

  // Stops accepting on every listener, waits up to `grace` for open pairs
  // and Connections (relay/connection.h) to finish, then closes the rest:
  // pairs with cause kDrained, Connections as dropping their ConnectionPtr
  // would (no handler runs). Returns when neither is left; Listen and Reconfigure fail from its
  // start on. Any non-worker thread.
  //
  // Safe to call again, from another thread, while a Drain runs: drains that
  // overlap share the earliest deadline, so a second call with a shorter
  // grace (Drain(Duration::zero()) on a second SIGTERM) cuts the first one's
  // wait short, and both return once neither is left.
  void Drain(Duration grace);

  size_t workers() const;
  // The backend the workers' loops wait with (EngineOptions::io, kAuto
  // resolved to what this process got).
  IoBackend io() const;

 private:
  class Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zrelay
