#include "tools/config/config.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <optional>
#include <utility>

#include "engine/unique_fd.h"
#include "tools/config/addresses.h"
#include "tools/config/preamble_values.h"
#include "tools/config/toml_prescan.h"
#include "tools/config/toml_reader.h"
#include "tools/config/udp_listener.h"

namespace zrelay {
namespace {

// Far above any real configuration; keeps "config = /dev/zero" from eating
// the memory.
constexpr size_t kMaxFileSize = 16 << 20;
constexpr int64_t kMaxWorkers = 1024;
constexpr int64_t kMaxPipePool = 1 << 20;
constexpr int64_t kMaxConnections = 100'000'000;
constexpr int64_t kMaxRetries = 16;
constexpr int64_t kMaxBacklog = 65535;
constexpr int64_t kMaxFallRise = 100;
constexpr size_t kMaxAlpnLength = 255;  // one length byte on the wire

constexpr char kModes[] = R"("splice", "copy" or "auto")";
constexpr char kIoBackends[] = R"("epoll", "uring" or "auto")";
constexpr char kBalancePolicies[] = R"("round-robin", "least-conn" or "maglev")";

Result<RelayMode> ParseMode(std::string_view text) {
  if (text == "splice") return RelayMode::kSplice;
  if (text == "copy") return RelayMode::kCopy;
  if (text == "auto") return RelayMode::kAuto;
  return Error::Invalid(std::string("expected ") + kModes + ", got " + QuoteString(text));
}

Result<IoBackend> ParseIo(std::string_view text) {
  IoBackend io;
  if (ParseIoBackend(std::string(text), &io)) return io;
  return Error::Invalid(std::string("expected ") + kIoBackends + ", got " + QuoteString(text));
}

// Listen addresses seen so far, to refuse one bound twice: with SO_REUSEPORT
// both binds would succeed and quietly split the clients between listeners.
// TCP and UDP ports are apart: a DNS server's tcp and udp :53 are two
// listeners on one address, and neither takes the other's clients.
struct ListenSeen {
  Protocol protocol;  // unix sockets and the admin endpoint count as TCP
  std::string address;
  std::string path;
};

class Parser {
 public:
  explicit Parser(std::string_view file) : errors_(file) {}
  Result<FileConfig> Parse(const toml::table& root);

 private:
  void ReadUpgradeSocket(TableReader& reader, FileConfig& config);
  void ReadAdmin(TableReader& reader, FileConfig& config);
  void ReadLog(TableReader& reader, FileConfig& config);
  void ReadListener(TableReader& reader, ListenerConfig& listener);
  void ReadListens(TableReader& reader, ListenerConfig& listener);
  void ReadTls(TableReader& reader, ListenerConfig& listener);
  void ReadHealth(TableReader& reader, ListenerConfig& listener);
  void ReadPreamble(TableReader& reader, ListenerConfig& listener);
  void ReadRoutes(TableReader& reader, ListenerConfig& listener);
  // [[...backend]] tables of a listener or a route; `expected` says what
  // is missing when there is none. `protocol` is the listener's.
  void ReadBackends(TableReader& reader, std::string_view expected, Protocol protocol,
                    std::vector<BackendConfig>& backends);

  ConfigErrors errors_;
  std::vector<ListenSeen> listens_seen_;
};

Result<FileConfig> Parser::Parse(const toml::table& root) {
  FileConfig config;
  TableReader reader(root, "", errors_);
  int64_t number = 0;
  if (reader.Int("workers", 1, kMaxWorkers, &number)) config.workers = static_cast<int>(number);
  reader.Parsed("mode", kModes, ParseMode, &config.mode);
  reader.Parsed("io", kIoBackends, ParseIo, &config.io);
  reader.Bool("pin", &config.pin);
  reader.Size("pipe_size", &config.pipe_size);
  if (reader.Int("pipe_pool", 0, kMaxPipePool, &number))
    config.pipe_pool = static_cast<uint64_t>(number);
  reader.Size("buffer_size", &config.buffer_size);
  reader.Size("budget", &config.budget);
  reader.Duration("drain_grace", /*allow_zero=*/true, &config.drain_grace);
  reader.String("user", &config.user);
  reader.Bool("log_closes", &config.log_closes);
  ReadUpgradeSocket(reader, config);
  ReadAdmin(reader, config);
  ReadLog(reader, config);
  // The older spelling of an access log on stderr; [log] access_log wins.
  if (config.log_closes && config.access_log.empty()) config.access_log = "stderr";

  std::vector<TableReader::SubTable> listeners = reader.Tables("listener");
  if (!reader.Has("listener")) reader.Missing("listener", "at least one [[listener]]");
  for (const TableReader::SubTable& table : listeners) {
    TableReader listener_reader(*table.table, table.path, errors_);
    ListenerConfig& listener = config.listeners.emplace_back();
    ReadListener(listener_reader, listener);
    for (size_t i = 0; i + 1 < config.listeners.size(); ++i) {
      if (!listener.name.empty() && config.listeners[i].name == listener.name) {
        listener_reader.Fail(*listener_reader.Get("name"), listener_reader.PathOf("name"),
                             QuoteString(listener.name) + " is already the name of listener[" +
                                 std::to_string(i) + "]");
      }
    }
    listener_reader.Finish();
  }
  reader.Finish();
  if (!errors_.ok()) return errors_.error();
  return config;
}

void Parser::ReadUpgradeSocket(TableReader& reader, FileConfig& config) {
  if (!reader.String("upgrade_socket", &config.upgrade_socket)) return;
  if (config.upgrade_socket.front() != '/') {
    reader.Fail(*reader.Get("upgrade_socket"), reader.PathOf("upgrade_socket"),
                "expected an absolute path, got " + QuoteString(config.upgrade_socket));
  }
}

void Parser::ReadAdmin(TableReader& reader, FileConfig& config) {
  const toml::table* table = reader.Table("admin");
  if (table == nullptr) return;
  TableReader admin(*table, reader.PathOf("admin"), errors_);
  std::string text;
  if (admin.String("listen", &text)) {
    Result<Address> address = ParseListenAddress(text);
    if (address.ok()) {
      config.admin_listen = *address;
      // A listener on the same address would take the admin's clients.
      if (address->is_unix() || address->port() != 0) {
        listens_seen_.push_back({Protocol::kTcp, address->ToString(), admin.PathOf("listen")});
      }
    } else {
      admin.Fail(*admin.Get("listen"), admin.PathOf("listen"), address.error().message());
    }
  } else if (!admin.Has("listen")) {
    admin.Missing("listen", "an address such as \"127.0.0.1:9901\" or \"unix:/run/zrelayd.sock\"");
  }
  admin.Finish();
}

void Parser::ReadLog(TableReader& reader, FileConfig& config) {
  const toml::table* table = reader.Table("log");
  if (table == nullptr) return;
  TableReader log(*table, reader.PathOf("log"), errors_);
  log.String("file", &config.log_file);
  log.String("access_log", &config.access_log);
  log.Finish();
}

void Parser::ReadListener(TableReader& reader, ListenerConfig& listener) {
  if (!reader.String("name", &listener.name) && !reader.Has("name")) {
    reader.Missing("name", "a unique name such as \"web\"");
  }
  // First: the protocol decides which keys mean anything, and how listen
  // addresses collide.
  reader.Parsed("protocol", R"("tcp" or "udp")", ParseProtocol, &listener.protocol);
  const bool udp = listener.protocol == Protocol::kUdp;
  if (udp) RefuseStreamKeys(reader);
  ReadListens(reader, listener);
  reader.Parsed("balance", kBalancePolicies, ParseBalancePolicy, &listener.balance);
  reader.Duration("connect_timeout", /*allow_zero=*/false, &listener.connect_timeout);
  if (reader.Duration("idle_timeout", /*allow_zero=*/true, &listener.idle_timeout) && udp &&
      listener.idle_timeout == Duration::zero()) {
    reader.Fail(*reader.Get("idle_timeout"), reader.PathOf("idle_timeout"),
                "expected a duration above 0 with protocol = \"udp\", got " +
                    DescribeValue(*reader.Get("idle_timeout")) +
                    ": a flow ends only when idle (unset: 30s)");
  }
  reader.Duration("handshake_timeout", /*allow_zero=*/false, &listener.handshake_timeout);
  reader.Duration("resolve_interval", /*allow_zero=*/false, &listener.resolve_interval);
  int64_t number = 0;
  if (reader.Int("max_connections", 0, kMaxConnections, &number)) {
    listener.max_connections = static_cast<uint64_t>(number);
  }
  if (reader.Int("retries", 0, kMaxRetries, &number)) listener.retries = static_cast<int>(number);
  if (reader.Int("backlog", 1, kMaxBacklog, &number)) listener.backlog = static_cast<int>(number);
  ReadTls(reader, listener);
  ReadHealth(reader, listener);
  ReadPreamble(reader, listener);
  ReadUdpSettings(reader, udp, &listener.udp);
  ReadBackends(reader, "at least one [[listener.backend]]", listener.protocol, listener.backends);
}

void Parser::ReadListens(TableReader& reader, ListenerConfig& listener) {
  std::vector<TableReader::Item> items = reader.Strings("listen", "an address");
  if (!reader.Has("listen")) {
    reader.Missing("listen", "an address such as \"127.0.0.1:8080\" or an array of them");
  }
  for (const TableReader::Item& item : items) {
    Result<Address> address = ParseListenAddress(item.text);
    if (!address.ok()) {
      reader.Fail(*item.node, item.path, address.error().message());
      continue;
    }
    if (listener.protocol == Protocol::kUdp && address->is_unix()) {
      reader.Fail(
          *item.node, item.path,
          "expected an IP address and port with protocol = \"udp\", got " + QuoteString(item.text));
      continue;
    }
    listener.listen.push_back(*address);
    if (!address->is_unix() && address->port() == 0) continue;  // each gets its own port
    std::string text = address->ToString();
    for (const ListenSeen& seen : listens_seen_) {
      if (seen.protocol == listener.protocol && seen.address == text) {
        reader.Fail(*item.node, item.path,
                    text + (listener.protocol == Protocol::kUdp ? " (udp)" : "") +
                        " is already listened on by " + seen.path);
      }
    }
    listens_seen_.push_back({listener.protocol, std::move(text), item.path});
  }
}

void Parser::ReadTls(TableReader& reader, ListenerConfig& listener) {
  std::vector<TableReader::Item> certs = reader.Strings("tls_cert", "a certificate file");
  std::vector<TableReader::Item> keys = reader.Strings("tls_key", "a key file");
  std::string tls_min;
  const bool has_tls_min = reader.String("tls_min", &tls_min);
  std::vector<TableReader::Item> alpn = reader.Strings("alpn", "a protocol name");
  bool backend_tls = false;
  reader.Bool("backend_tls", &backend_tls);
  std::string backend_ca, backend_sni;
  reader.String("backend_ca", &backend_ca);
  reader.String("backend_sni", &backend_sni);
  bool backend_insecure = false;
  reader.Bool("backend_insecure", &backend_insecure);

  if (!keys.empty() && !reader.Has("tls_cert")) {
    reader.Fail(*reader.Get("tls_key"), reader.PathOf("tls_key"), "needs tls_cert");
  } else if (!certs.empty() && !reader.Has("tls_key")) {
    reader.Missing("tls_key", "a key file for each tls_cert");
  } else if (!certs.empty() && !keys.empty() && certs.size() != keys.size()) {
    reader.Fail(*reader.Get("tls_key"), reader.PathOf("tls_key"),
                "expected " + std::to_string(certs.size()) +
                    (certs.size() == 1 ? " key file" : " key files") + ", one per tls_cert, got " +
                    std::to_string(keys.size()));
  }
  if (has_tls_min) {
    Result<int> version = ParseTlsVersion(tls_min);
    if (!version.ok()) {
      reader.Fail(*reader.Get("tls_min"), reader.PathOf("tls_min"), version.error().message());
    }
  }
  for (const TableReader::Item& protocol : alpn) {
    if (protocol.text.size() > kMaxAlpnLength) {
      reader.Fail(*protocol.node, protocol.path,
                  "expected a protocol name of at most 255 bytes, got " +
                      std::to_string(protocol.text.size()) + " bytes");
    }
  }
  if (!backend_sni.empty() && !IsHostName(backend_sni)) {
    reader.Fail(*reader.Get("backend_sni"), reader.PathOf("backend_sni"),
                "expected a host name, got " + DescribeValue(*reader.Get("backend_sni")));
  }
  if (!backend_tls) {
    for (std::string_view key : {"backend_ca", "backend_sni", "backend_insecure"}) {
      if (reader.Has(key)) {
        reader.Fail(*reader.Get(key), reader.PathOf(key), "needs backend_tls = true");
      }
    }
  }
  if (!reader.Has("tls_cert") && !backend_tls) {
    for (std::string_view key : {"tls_min", "alpn"}) {
      if (reader.Has(key)) {
        reader.Fail(*reader.Get(key), reader.PathOf(key), "needs tls_cert or backend_tls = true");
      }
    }
  }

  for (const std::vector<TableReader::Item>* items : {&certs, &keys}) {
    for (const TableReader::Item& item : *items) {
      listener.tls_files.push_back({item.path, LineOf(*item.node), item.text});
    }
  }
  if (!backend_ca.empty()) {
    listener.tls_files.push_back(
        {reader.PathOf("backend_ca"), LineOf(*reader.Get("backend_ca")), backend_ca});
  }

  std::vector<std::string> protocols;
  protocols.reserve(alpn.size());
  for (const TableReader::Item& protocol : alpn) protocols.push_back(protocol.text);
  if (!certs.empty()) {
    TlsServerConfig& tls = listener.tls.emplace();
    for (size_t i = 0; i < certs.size() && i < keys.size(); ++i) {
      tls.certs.push_back({certs[i].text, keys[i].text});
    }
    tls.alpn = protocols;
    if (has_tls_min) tls.min_version = tls_min;
  }
  if (backend_tls) {
    TlsClientConfig& tls = listener.backend_tls.emplace();
    tls.verify = !backend_insecure;
    tls.ca_file = backend_ca;
    tls.sni = backend_sni;
    tls.alpn = protocols;
    if (has_tls_min) tls.min_version = tls_min;
  }
}

void Parser::ReadHealth(TableReader& reader, ListenerConfig& listener) {
  const toml::table* table = reader.Table("health");
  if (table == nullptr) return;
  TableReader health_reader(*table, reader.PathOf("health"), errors_);
  HealthConfig& health = listener.health.emplace();
  health_reader.Duration("interval", /*allow_zero=*/false, &health.interval);
  health_reader.Duration("timeout", /*allow_zero=*/false, &health.timeout);
  int64_t number = 0;
  if (health_reader.Int("fall", 1, kMaxFallRise, &number)) health.fall = static_cast<int>(number);
  if (health_reader.Int("rise", 1, kMaxFallRise, &number)) health.rise = static_cast<int>(number);
  if (health_reader.ok() && health.timeout >= health.interval) {
    // Either may be the default: name the values as the file has them.
    const toml::node* interval = health_reader.Get("interval");
    const toml::node* timeout = health_reader.Get("timeout");
    std::string what = "expected less than interval " +
                       (interval ? DescribeValue(*interval) : "\"2s\" (the default)") + ", got " +
                       (timeout ? DescribeValue(*timeout) : "\"1s\" (the default)");
    if (timeout != nullptr) {
      health_reader.Fail(*timeout, health_reader.PathOf("timeout"), what);
    } else {
      health_reader.FailTable("timeout", what);
    }
  }
  health_reader.Finish();
}

// What a listener reads before it picks a backend: the PROXY header and the
// ClientHello's server name.
void Parser::ReadPreamble(TableReader& reader, ListenerConfig& listener) {
  reader.Parsed("proxy_protocol", R"("accept")", ParseProxyProtocol, &listener.proxy_protocol);
  for (const TableReader::Item& item : reader.Strings("proxy_protocol_from", "a network")) {
    Result<CidrBlock> block = CidrBlock::Parse(item.text);
    if (block.ok()) {
      listener.proxy_protocol_from.push_back(*block);
    } else {
      reader.Fail(*item.node, item.path, block.error().message());
    }
  }
  reader.Duration("preamble_timeout", /*allow_zero=*/false, &listener.preamble_timeout);
  reader.Parsed("route_by", R"("sni")", ParseRouteBy, &listener.route_by);
  ReadRoutes(reader, listener);

  if (reader.Has("proxy_protocol_from") && !reader.Has("proxy_protocol")) {
    reader.Fail(*reader.Get("proxy_protocol_from"), reader.PathOf("proxy_protocol_from"),
                R"(needs proxy_protocol = "accept")");
  }
  if (reader.Has("preamble_timeout") && !reader.Has("proxy_protocol") && !reader.Has("route_by")) {
    reader.Fail(*reader.Get("preamble_timeout"), reader.PathOf("preamble_timeout"),
                "needs proxy_protocol or route_by");
  }
  if (listener.route_by == RouteBy::kSni && reader.Has("tls_cert")) {
    reader.Fail(*reader.Get("route_by"), reader.PathOf("route_by"),
                "not with tls_cert: routing by SNI passes the client's TLS through to the backend");
  }
  if (reader.Has("route") && !reader.Has("route_by")) {
    reader.Fail(*reader.Get("route"), reader.PathOf("route"), R"(needs route_by = "sni")");
  } else if (reader.Has("route_by") && !reader.Has("route")) {
    reader.Missing("route", "at least one [[listener.route]] with route_by");
  }
}

void Parser::ReadRoutes(TableReader& reader, ListenerConfig& listener) {
  // Each server name once across the routes: a second route with the same
  // name would never see a client.
  struct NameSeen {
    std::string name;
    size_t route;
  };
  std::vector<NameSeen> names_seen;
  for (const TableReader::SubTable& table : reader.Tables("route")) {
    TableReader route_reader(*table.table, table.path, errors_);
    RouteConfig& route = listener.routes.emplace_back();
    const size_t index = listener.routes.size() - 1;
    if (route_reader.String("name", &route.name)) {
      for (size_t i = 0; i < index; ++i) {
        if (listener.routes[i].name == route.name) {
          route_reader.Fail(
              *route_reader.Get("name"), route_reader.PathOf("name"),
              QuoteString(route.name) + " is already the name of route[" + std::to_string(i) + "]");
        }
      }
    }
    std::vector<TableReader::Item> items = route_reader.Strings("sni", "a server name");
    if (!route_reader.Has("sni")) {
      route_reader.Missing(
          "sni", R"(a server name or an array of them, such as ["a.example", "*.b.example"])");
    }
    for (const TableReader::Item& item : items) {
      Result<std::string> name = ParseServerNamePattern(item.text);
      if (!name.ok()) {
        route_reader.Fail(*item.node, item.path, name.error().message());
        continue;
      }
      for (const NameSeen& seen : names_seen) {
        if (seen.name == *name) {
          route_reader.Fail(*item.node, item.path,
                            QuoteString(*name) + " is already a name of route[" +
                                std::to_string(seen.route) + "]");
        }
      }
      names_seen.push_back({*name, index});
      route.sni.push_back(std::move(name.value()));
    }
    route_reader.Parsed("balance", kBalancePolicies, ParseBalancePolicy, &route.balance);
    ReadBackends(route_reader, "at least one [[listener.route.backend]]", listener.protocol,
                 route.backends);
    route_reader.Finish();
  }
}

void Parser::ReadBackends(TableReader& reader, std::string_view expected, Protocol protocol,
                          std::vector<BackendConfig>& backends) {
  std::vector<TableReader::SubTable> tables = reader.Tables("backend");
  if (!reader.Has("backend")) reader.Missing("backend", expected);
  // The address each backend is known by, to refuse one listed twice: the
  // balancer could not tell the two apart.
  std::vector<std::string> identities;
  for (const TableReader::SubTable& table : tables) {
    TableReader backend_reader(*table.table, table.path, errors_);
    BackendConfig& backend = backends.emplace_back();
    if (protocol == Protocol::kUdp) RefuseStreamBackendKeys(backend_reader);
    const std::string path = backend_reader.PathOf("address");
    if (backend_reader.String("address", &backend.address)) {
      const toml::node& node = *backend_reader.Get("address");
      Result<BackendAddress> address = ParseBackendAddress(backend.address);
      if (address.ok() && protocol == Protocol::kUdp && address->literal &&
          address->literal->is_unix()) {
        backend_reader.Fail(node, path,
                            "expected host:port, IPv4:port or [IPv6]:port with protocol = "
                            "\"udp\", got " +
                                DescribeValue(node));
        identities.emplace_back();
      } else if (address.ok()) {
        backend.literal = address->literal;
        backend.host = address->host;
        backend.port = address->port;
        std::string identity = backend.literal ? backend.literal->ToString()
                                               : backend.host + ":" + std::to_string(backend.port);
        for (char& c : identity) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        for (size_t i = 0; i < identities.size(); ++i) {
          if (identities[i] == identity) {
            backend_reader.Fail(
                node, path,
                DescribeValue(node) + " is listed twice (also backend[" + std::to_string(i) + "])");
          }
        }
        identities.push_back(std::move(identity));
      } else {
        backend_reader.Fail(node, path, address.error().message());
        identities.emplace_back();
      }
    } else if (!backend_reader.Has("address")) {
      backend_reader.Missing("address", "host:port, IPv4:port, [IPv6]:port or unix:/path");
    }
    int64_t weight = 0;
    if (backend_reader.Int("weight", 1, kMaxBackendWeight, &weight)) {
      backend.weight = static_cast<uint32_t>(weight);
    }
    backend_reader.Parsed("send_proxy", R"("v1" or "v2")", ParseSendProxy, &backend.send_proxy);
    backend_reader.Finish();
  }
}

// toml++'s error, one line, as "FILE:LINE:COLUMN: what".
Error TomlSyntaxError(const toml::parse_error& error, std::string_view file_name) {
  const toml::source_position& at = error.source().begin;
  return Error::Invalid(std::string(file_name) + ":" + std::to_string(at.line) + ":" +
                        std::to_string(at.column) + ": " +
                        // toml++ quotes the offending character as is, a newline too.
                        EscapeControlCharacters(error.description()));
}

}  // namespace

Result<FileConfig> ParseConfig(std::string_view text, std::string_view file_name) {
  if (std::optional<Error> error = PrescanToml(text, file_name)) return *error;
  // The prescan follows TOML exactly only where the text is valid TOML, and
  // toml++ 3.3 has undefined behaviour on non-ASCII characters it reaches
  // outside strings and comments (toml_prescan.h). So the structure is
  // checked first on a copy without them; only then does toml++ see them.
  toml::parse_result parsed = toml::parse(WithoutNonAscii(text), file_name);
  if (!parsed) return TomlSyntaxError(parsed.error(), file_name);
  parsed = toml::parse(text, file_name);
  if (!parsed) return TomlSyntaxError(parsed.error(), file_name);
  return Parser(file_name).Parse(parsed.table());
}

Result<FileConfig> LoadConfigFile(const std::string& path) {
  const std::string what = "config file '" + path + "'";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::FromErrno(errno, what);
  std::string text;
  char buffer[64 << 10];
  while (true) {
    ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno(errno, what);
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > kMaxFileSize) {
      return Error::Invalid(what + ": larger than 16 MiB, not a configuration file");
    }
  }
  return ParseConfig(text, path);
}

}  // namespace zrelay
