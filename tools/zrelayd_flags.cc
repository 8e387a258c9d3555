#include "tools/zrelayd_flags.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <utility>

#include "tools/cli/flag_set.h"
#include "tools/cli/values.h"

namespace zrelay {
namespace {

constexpr char kFooter[] =
    "Or: zrelayd --config FILE (every listener of a TOML file), zrelayd --check FILE.\n"
    "zrelayd --config FILE --upgrade: a zero-downtime upgrade. The new zrelayd takes the\n"
    "listening sockets of the one serving the file's upgrade_socket, which then drains as on\n"
    "SIGTERM. With nobody serving it, --upgrade exits 1 (it never binds beside a live one).\n"
    "ADDR: 127.0.0.1:8080, [::1]:8080, localhost:8080, :8080, unix:/path\n"
    "DUR: 500ms, 2s, 1.5s, 3m, 1h. SIZE: 65536, 64k, 1M.\n"
    "A bare boolean flag means true; --flag=VALUE takes true, false, yes, no, on, off, 1, 0.\n"
    "--backend-tls verifies the certificate against --backend-sni, else the --backend host\n"
    "name (also sent as SNI), else the backend's IP.\n"
    "Signals: SIGTERM/SIGINT drain (a second one closes the rest at once); SIGHUP\n"
    "reloads the --config file (else it is logged and ignored); SIGUSR1 reopens the\n"
    "[log] files; SIGUSR2 starts the binary installed at this one's path with --upgrade\n"
    "(needs upgrade_socket). Exit status: 0 after\n"
    "a drain, 1 on a setup failure (bind, certificates, --user), 2 on a usage error or\n"
    "a file that --check refuses.";

Error Usage(const std::string& message) { return Error::Invalid(message); }

// The flags and the rules between them; FlagSet (tools/cli) splits the
// command line and converts each value.
class FlagTable {
 public:
  explicit FlagTable(ZrelaydConfig& config);

  Status Parse(const std::vector<std::string>& args);
  std::string Help() const { return app_.help(); }

 private:
  // Shorthands for the table in the constructor.
  void Value(const std::string& name, const std::string& type, const std::string& help,
             FlagSet::Setter set) {
    flags_.Value(name, type, help, std::move(set));
  }
  // `inverted`: the field holds the opposite (--backend-insecure clears verify).
  void Bool(const std::string& name, bool* field, const std::string& help, bool inverted = false) {
    flags_.Bool(name, field, help, inverted);
  }
  Status Finish();
  Status CheckFileForm() const;
  Status PairCertsAndKeys();

  ZrelaydConfig& config_;
  CLI::App app_{"Relays every client accepted on --listen to --backend, zero-copy where it can.",
                "zrelayd"};
  FlagSet flags_{app_, FlagSet::Repeats::kLastWins};  // the last of repeated flags wins
  std::vector<std::string> certs_, keys_;
};

FlagTable::FlagTable(ZrelaydConfig& config) : config_(config) {
  app_.set_help_flag();  // ours below: --help is a config field, not an exception
  app_.footer(kFooter);
  app_.get_formatter()->column_width(32);
  app_.get_formatter()->label("Usage", "usage");
  EngineOptions& engine = config_.engine;

  auto address = [](Address* out) {
    return [out](const std::string& text) -> Status {
      auto a = Address::Parse(text);
      if (!a.ok()) return a.error();
      *out = a.value();
      return Status::Ok();
    };
  };
  auto duration = [](Duration* out, bool allow_zero) {
    return [out, allow_zero](const std::string& text) -> Status {
      auto d = ParseDuration(text, allow_zero);
      if (!d.ok()) return d.error();
      *out = d.value();
      return Status::Ok();
    };
  };
  auto size = [](size_t* out) {
    return [out](const std::string& text) -> Status {
      auto s = ParseSize(text);
      if (!s.ok()) return s.error();
      *out = s.value();
      return Status::Ok();
    };
  };
  auto count = [](auto* out, uint64_t min, uint64_t max) {
    return [out, min, max](const std::string& text) -> Status {
      auto n = ParseCount(text, min, max);
      if (!n.ok()) return n.error();
      *out = static_cast<std::remove_pointer_t<decltype(out)>>(n.value());
      return Status::Ok();
    };
  };

  auto file = [](std::string* out) {
    return [out](const std::string& text) -> Status {
      if (text.empty()) return Usage("empty file name");
      *out = text;
      return Status::Ok();
    };
  };
  Value("--config", "FILE", "run every listener of this configuration file (TOML)",
        file(&config_.config_file));
  Value("--check", "FILE", "check a configuration file and its certificates, then exit",
        file(&config_.check_file));
  Bool("--upgrade", &config_.upgrade,
       "with --config: take over from the zrelayd serving upgrade_socket (see below)");
  Value("--listen", "ADDR", "address to accept clients on (required)", address(&config_.listen));
  Value("--backend", "ADDR", "backend every client is relayed to (required)",
        [this, address](const std::string& text) -> Status {
          config_.backend_host = HostOf(text);
          return address(&config_.backend)(text);
        });
  Value("--mode", "splice|copy|auto", "how plain bytes move (default: splice)",
        [&engine](const std::string& text) -> Status {
          if (text == "splice") {
            engine.mode = RelayMode::kSplice;
          } else if (text == "copy") {
            engine.mode = RelayMode::kCopy;
          } else if (text == "auto") {
            engine.mode = RelayMode::kAuto;
          } else {
            return Usage("'" + text + "' is not one of splice, copy, auto");
          }
          return Status::Ok();
        });
  Value("--io", "epoll|uring|auto",
        "what the workers wait with (default: epoll; auto: io_uring where allowed)",
        [&engine](const std::string& text) -> Status {
          if (!ParseIoBackend(text, &engine.io)) {
            return Usage("'" + text + "' is not one of epoll, uring, auto");
          }
          return Status::Ok();
        });
  Value("--workers", "N", "event-loop threads (default: one per CPU)",
        count(&engine.workers, 1, 1024));
  Bool("--pin", &engine.pin_cpus, "pin worker i to CPU i");
  Value("--idle-timeout", "DUR", "close pairs idle this long (default: never)",
        duration(&engine.idle_timeout, /*allow_zero=*/true));
  Value("--connect-timeout", "DUR", "backend connect timeout (default: 5s)",
        duration(&config_.connect_timeout, /*allow_zero=*/false));
  Value("--handshake-timeout", "DUR", "TLS handshakes zrelayd runs, at most (default: 10s)",
        duration(&engine.handshake_timeout, /*allow_zero=*/false));
  Value("--drain-grace", "DUR", "on SIGTERM/SIGINT, wait this long for pairs (default: 10s)",
        duration(&config_.drain_grace, /*allow_zero=*/true));
  Value("--max-connections", "N", "open client connections at most (default 0: from the fd limit)",
        count(&config_.max_connections, 0, uint64_t{1} << 32));
  Value("--pipe-size", "SIZE", "kernel pipe size for splice (default: 1M)",
        size(&engine.pipe_size));
  Value("--pipe-pool", "N", "pipes per worker, at most (default: 1024)",
        count(&engine.pipe_pool_cap, 0, 1 << 20));
  Value("--buffer-size", "SIZE", "copy ring per direction (default: 64k)",
        size(&engine.buffer_size));
  Value("--budget", "SIZE", "bytes per direction per event (default: 256k)",
        size(&engine.budget_per_event));
  Bool("--log-closes", &config_.log_closes, "one line per closed pair on stderr");
  Value("--user", "NAME", "once bound and keys loaded, run as this user (needs root)",
        [this](const std::string& text) -> Status {
          if (text.empty()) return Usage("empty user name");
          config_.user = text;
          return Status::Ok();
        });

  const std::string tls = "TLS";
  app_.add_option("--tls-cert", certs_,
                  "terminate TLS from clients (repeat with --tls-key: SNI picks, first is default)")
      ->type_name("FILE")
      ->expected(1)
      ->allow_extra_args(false)  // one file per flag: the next word is not another cert
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->group(tls);
  app_.add_option("--tls-key", keys_, "the key of the --tls-cert before it")
      ->type_name("FILE")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->group(tls);
  Value("--alpn", "LIST", "ALPN protocols, comma-separated (clients and backend)",
        [this](const std::string& text) -> Status {
          std::vector<std::string> protocols;
          for (size_t start = 0; start <= text.size();) {
            size_t comma = std::min(text.find(',', start), text.size());
            protocols.push_back(text.substr(start, comma - start));
            start = comma + 1;
          }
          config_.tls_server.alpn = config_.tls_backend.alpn = protocols;
          return Status::Ok();
        });
  Value("--tls-min", "VERSION", "TLS1.2 (default) or TLS1.3, both sides",
        [this](const std::string& text) -> Status {
          auto version = ParseTlsVersion(text);
          if (!version.ok()) return version.error();
          config_.tls_server.min_version = config_.tls_backend.min_version = text;
          return Status::Ok();
        });
  Bool("--backend-tls", &config_.backend_tls, "originate TLS to the backend, verified: see below");
  Value("--backend-ca", "FILE", "CA bundle for the backend (default: system store)",
        [this](const std::string& text) -> Status {
          config_.tls_backend.ca_file = text;
          return Status::Ok();
        });
  Value("--backend-sni", "NAME", "server name sent and verified",
        [this](const std::string& text) -> Status {
          config_.tls_backend.sni = text;
          return Status::Ok();
        });
  Bool("--backend-insecure", &config_.tls_backend.verify, "do not verify the backend certificate",
       /*inverted=*/true);
  for (const std::string& name :
       {std::string("--alpn"), std::string("--tls-min"), std::string("--backend-tls"),
        std::string("--backend-ca"), std::string("--backend-sni"),
        std::string("--backend-insecure")}) {
    app_.get_option(name)->group(tls);
  }
  Bool("-h,--help", &config_.help, "this text");
}

Status FlagTable::Parse(const std::vector<std::string>& args) {
  if (Status s = flags_.Parse(args); !s.ok()) return s;
  return Finish();
}

Status FlagTable::Finish() {
  if (Status s = PairCertsAndKeys(); !s.ok()) return s;
  if (config_.help) return Status::Ok();
  if (!config_.config_file.empty() || !config_.check_file.empty()) return CheckFileForm();
  if (config_.upgrade)
    return Usage("--upgrade needs --config (upgrade_socket is a key of the file)");
  if (app_.count("--listen") == 0) return Usage("--listen is required");
  if (app_.count("--backend") == 0) return Usage("--backend is required");
  config_.tls = !config_.tls_server.certs.empty();
  bool backend_tls_flags = app_.count("--backend-ca") > 0 || app_.count("--backend-sni") > 0 ||
                           !config_.tls_backend.verify;
  if (backend_tls_flags && !config_.backend_tls) {
    return Usage("--backend-ca, --backend-sni and --backend-insecure need --backend-tls");
  }
  return Status::Ok();
}

// The file holds every setting: a flag beside it would either be ignored or
// quietly override the file, so it is refused.
Status FlagTable::CheckFileForm() const {
  if (!config_.config_file.empty() && !config_.check_file.empty()) {
    return Usage("--config and --check: give one of them");
  }
  const std::string form = config_.config_file.empty() ? "--check" : "--config";
  for (const CLI::Option* option : app_.parse_order()) {
    const std::string& name = option->get_name();
    const bool upgrade_with_config = name == "--upgrade" && form == "--config";
    if (name != "--config" && name != "--check" && !upgrade_with_config) {
      return Usage(name + " cannot be combined with " + form + " (the file holds every setting)");
    }
  }
  return Status::Ok();
}

Status FlagTable::PairCertsAndKeys() {
  // CLI11 collects each flag's values apart; the command line's order says
  // which key belongs to which certificate.
  size_t cert = 0, key = 0;
  auto& pairs = config_.tls_server.certs;
  for (const CLI::Option* option : app_.parse_order()) {
    if (option->get_name() == "--tls-cert") {
      pairs.push_back({certs_[cert++], ""});
    } else if (option->get_name() == "--tls-key") {
      const std::string& file = keys_[key++];
      if (pairs.empty() || !pairs.back().key_file.empty()) {
        return Usage("--tls-key '" + file + "' must follow its --tls-cert");
      }
      pairs.back().key_file = file;
    }
  }
  for (const auto& pair : pairs) {
    if (pair.key_file.empty()) return Usage("--tls-cert '" + pair.cert_file + "' has no --tls-key");
  }
  return Status::Ok();
}

// With --backend-tls and no --backend-sni, the backend's certificate must
// match what the user typed: a host name is sent as SNI and verified; an IP
// (or a name-less ":port") is verified against the certificate's IP SANs.
void ChooseBackendName(ZrelaydConfig& config) {
  if (!config.backend_tls || !config.tls_backend.sni.empty() || config.backend.is_unix()) return;
  if (!config.backend_host.empty() && !IsIpLiteral(config.backend_host)) {
    config.tls_backend.sni = config.backend_host;
    return;
  }
  std::string host = config.backend.ToString();
  host.resize(host.rfind(':'));
  if (host.front() == '[') host = host.substr(1, host.size() - 2);
  config.tls_backend.verify_hostname = host;
}

}  // namespace

Result<ZrelaydConfig> ParseZrelaydFlags(const std::vector<std::string>& args) {
  ZrelaydConfig config;
  FlagTable table(config);
  if (Status s = table.Parse(args); !s.ok()) return s.error();
  ChooseBackendName(config);
  return config;
}

std::string ZrelaydUsage() {
  ZrelaydConfig config;
  return FlagTable(config).Help();
}

}  // namespace zrelay
