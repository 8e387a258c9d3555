// zrelayd's configuration file (TOML), parsed into plain data.
//
//   Result<FileConfig> config = LoadConfigFile("/etc/zrelayd.toml");
//   if (!config.ok()) return config.error();  // one line: file, line, key path, what
//   for (const ListenerConfig& listener : config->listeners) { ... }
//
// Each key of the file is the field of the same name (the TLS keys fill
// ListenerConfig::tls and backend_tls), and the keys zrelayd also takes as
// flags default as the flags do. examples/zrelayd.toml is a load balancer
// with two listeners.
//
// Parsing opens nothing and resolves nothing: backend host names stay text
// for the engine to resolve off the event loops, and certificate files are
// only named (the TLS context builder opens them). Literal addresses are
// parsed here, so a bad one is an error before anything starts.
//
// Errors are one line: the file, the line (line:column for TOML syntax
// errors), the key path, and what was expected.
//   zrelayd.toml:12: listener[0].backend[1].weight: expected an integer 1..256, got "two"
//   zrelayd.toml:7: listener[0].balanse: unknown key (did you mean "balance"?)
//   zrelayd.toml:2:16: Error while parsing array: encountered end-of-file
//   zrelayd.toml: listener: missing; expected at least one [[listener]]
//   config file '/etc/zrelayd.toml': No such file or directory
// Unknown keys are errors, so a misspelt key never silently does nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/address.h"
#include "engine/cidr.h"
#include "engine/clock.h"
#include "engine/io_backend.h"
#include "engine/result.h"
#include "relay/balancer.h"
#include "relay/relay.h"
#include "ssl/tls_context.h"

namespace zrelay {

// [listener.health]: active checks of each backend. The table's presence
// turns them on; without it every backend counts as healthy.
struct HealthConfig {
  Duration interval = seconds(2);  // between two checks of one backend
  Duration timeout = seconds(1);   // one check, at most; less than interval
  int fall = 3;                    // 1..100 consecutive failures mark a backend down
  int rise = 2;                    // 1..100 consecutive successes mark it up again
};

// [[listener.backend]]
struct BackendConfig {
  // As written: "app1.internal:9000", "10.0.0.5:9000", "[fd00::5]:9000",
  // "unix:/run/app.sock". Exactly one of `literal` and `host` is set.
  std::string address;
  std::optional<Address> literal;  // IP literal or unix path, parsed
  std::string host;                // a host name, for the engine to resolve; empty for literals
  int port = 0;                    // 1..65535; 0 for unix sockets
  uint32_t weight = 1;             // 1..kMaxBackendWeight
  // send_proxy = "v1" or "v2": a PROXY protocol header before the client's bytes.
  BackendOptions::SendProxy send_proxy = BackendOptions::SendProxy::kNone;
};

// [[listener.route]]: the clients whose TLS server name matches `sni` go to
// the route's own backends (the listener's route_by = "sni").
struct RouteConfig {
  std::string name;              // optional; for logs and metrics
  std::vector<std::string> sni;  // "a.example", "*.b.example"; lowercase, at least one
  BalancePolicy balance = BalancePolicy::kRoundRobin;
  std::vector<BackendConfig> backends;  // [[listener.route.backend]], at least one
};

// [[listener]]
struct ListenerConfig {
  std::string name;  // unique, non-empty
  // protocol = "tcp" (the default) or "udp". A UDP listener relays datagrams,
  // one flow per client address and port, and refuses the keys about streams
  // (tools/config/udp_listener.h): TLS, PROXY protocol, routes, backlog,
  // connect_timeout and handshake_timeout keep their defaults, unused.
  Protocol protocol = Protocol::kTcp;
  // "listen": one address or an array; never a host name. An address is taken
  // once per protocol: a TCP and a UDP listener may share one, two of either
  // may not. A UDP listener's are IP addresses (no unix:).
  std::vector<Address> listen;
  BalancePolicy balance = BalancePolicy::kRoundRobin;
  Duration connect_timeout = seconds(5);
  // 0: never. On a UDP listener 0 means unset (the file cannot say "0s"
  // there: a flow ends only when idle): the engine ends flows after 30 s.
  Duration idle_timeout{};
  Duration handshake_timeout = seconds(10);
  // How often backend host names are resolved again.
  Duration resolve_interval = seconds(30);
  // Open client connections at most; past it, accepting pauses (clients wait
  // in the backlog). 0..100000000; 0: derived from the fd limit. On a UDP
  // listener: flows open at once; past it, new clients' datagrams are dropped.
  uint64_t max_connections = 0;
  // Other backends tried, one after the other, when a backend connect fails
  // (0..16).
  int retries = 0;
  int backlog = 1024;  // listen(2) backlog, 1..65535
  // Set: terminate TLS from clients. tls_cert/tls_key (one string or arrays
  // of equal length; certs[0] is the default, the others are chosen by SNI),
  // plus tls_min and alpn.
  std::optional<TlsServerConfig> tls;
  // Set (backend_tls = true): originate TLS to the backends, verified unless
  // backend_insecure. backend_ca -> ca_file, backend_sni -> sni, plus tls_min
  // and alpn. With no backend_sni, the engine sends a host-name backend's
  // name as SNI and verifies it, and verifies a literal's IP.
  std::optional<TlsClientConfig> backend_tls;
  // Where each TLS file is named: tls_cert, tls_key, then backend_ca. The
  // files are opened only when the contexts are built: an error then names
  // the key and line as the parser's errors do.
  struct FileKey {
    std::string path;   // "listener[1].tls_cert[0]"
    uint32_t line = 0;  // 0: unknown
    std::string file;   // as written
  };
  std::vector<FileKey> tls_files;
  std::optional<HealthConfig> health;
  // proxy_protocol = "accept": every client starts with a PROXY header (v1 or
  // v2), whose source address is the client's from then on.
  bool proxy_protocol = false;
  // With proxy_protocol: the peers allowed to send one; empty: any.
  std::vector<CidrBlock> proxy_protocol_from;
  // How long a client has to send its PROXY header or ClientHello.
  Duration preamble_timeout = seconds(5);
  // route_by = "sni": clients go to the route their server name matches, the
  // others to `backends`. Not with tls_cert (the TLS stream passes through).
  RouteBy route_by = RouteBy::kNone;
  std::vector<RouteConfig> routes;
  std::vector<BackendConfig> backends;  // at least one; with routes, the default
  // udp_receive_buffer, udp_send_buffer (UDP only, at most 1G): SO_RCVBUF and
  // SO_SNDBUF of the listening and flow sockets; 0 (unset): the kernel's.
  // udp_responses (UDP only, 0..1000): answers per request, after which a
  // flow ends (relay.h UdpOptions::responses); 0: flows end when idle.
  UdpOptions udp{};
};

// The whole file: global settings, then the listeners.
struct FileConfig {
  int workers = 0;                      // 1..1024; 0 (absent): one per online CPU
  RelayMode mode = RelayMode::kSplice;  // "splice", "copy" or "auto"
  IoBackend io = IoBackend::kEpoll;     // "epoll", "uring" or "auto"
  bool pin = false;                     // pin worker i to CPU i
  uint64_t pipe_size = 1 << 20;         // kernel pipe size for splice (sizes: above 0)
  uint64_t pipe_pool = 1024;            // pipes per worker, at most (0..1048576)
  uint64_t buffer_size = 64 << 10;      // copy ring per direction
  uint64_t budget = 256 << 10;          // bytes per direction per event
  Duration drain_grace = seconds(10);   // on SIGTERM/SIGINT, wait this long for pairs
  std::string user;                     // switch to this user after binding; empty: stay
  // Sets access_log to "stderr" unless [log] access_log names a destination
  // (the parser and FileConfigFromFlags do it), so --log-closes and this key
  // keep working as they did; only access_log is read after parsing.
  bool log_closes = false;
  // [admin] listen: the HTTP endpoint for /metrics and /healthz ("127.0.0.1:9901"
  // or "unix:/run/zrelayd/admin.sock"); unset: none.
  std::optional<Address> admin_listen;
  // [log] file: where zrelayd's own lines go (start, stop, reload, state
  // changes, errors); empty: stderr. Reopened on SIGUSR1.
  std::string log_file;
  // [log] access_log: one line per closed pair (tools/log/access_log.h):
  // "stderr" or a file path (reopened on SIGUSR1); empty: none. log_closes
  // = true (or --log-closes) without it means "stderr".
  std::string access_log;
  // A unix socket path where this zrelayd hands its listening sockets to a
  // new zrelayd started with --upgrade (a zero-downtime binary upgrade);
  // empty: no upgrades.
  std::string upgrade_socket;
  std::vector<ListenerConfig> listeners;  // at least one
};

// Parses a whole file's text. `file_name` is only used in error messages.
Result<FileConfig> ParseConfig(std::string_view text, std::string_view file_name);

// Reads and parses the file at `path` (errors name it as given).
Result<FileConfig> LoadConfigFile(const std::string& path);

}  // namespace zrelay
