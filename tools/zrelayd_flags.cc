#include "tools/zrelayd_flags.h"

#include "tools/cli/values.h"

#include <algorithm>
#include <charconv>

namespace zrelay {

const char kZrelaydUsage[] =
    "usage: zrelayd --listen ADDR --backend ADDR [options]\n"
    "\n"
    "Relays every client accepted on ADDR to the backend, zero-copy where it can.\n"
    "ADDR: 127.0.0.1:8080, [::1]:8080, localhost:8080, :8080, unix:/path\n"
    "\n"
    "  --mode splice|copy|auto   how plain bytes move (default: splice)\n"
    "  --workers N               event-loop threads (default: one per CPU)\n"
    "  --pin                     pin worker i to CPU i\n"
    "  --idle-timeout DUR        close pairs idle this long (default: never)\n"
    "  --connect-timeout DUR     backend connect timeout (default: 5s)\n"
    "  --drain-grace DUR         on SIGTERM/SIGINT, wait this long for pairs (default: 10s)\n"
    "  --pipe-size SIZE          kernel pipe size for splice (default: 1M)\n"
    "  --pipe-pool N             pipes per worker, at most (default: 1024)\n"
    "  --buffer-size SIZE        copy ring per direction (default: 64k)\n"
    "  --budget SIZE             bytes per direction per event (default: 256k)\n"
    "  --log-closes              one line per closed pair on stderr\n"
    "TLS:\n"
    "  --tls-cert FILE --tls-key FILE   terminate TLS from clients; repeat the pair for\n"
    "                            more certificates chosen by SNI (the first is the default)\n"
    "  --alpn LIST               ALPN protocols, comma-separated (clients and backend)\n"
    "  --tls-min VERSION         TLS1.2 (default) or TLS1.3, both sides\n"
    "  --backend-tls             originate TLS to the backend (verified by default)\n"
    "  --backend-ca FILE         CA bundle for the backend (default: system store)\n"
    "  --backend-sni NAME        server name sent and verified\n"
    "  --backend-insecure        do not verify the backend certificate\n"
    "  --help                    this text\n"
    "DUR: 500ms, 2s, 1.5s, 3m, 1h. SIZE: 65536, 64k, 1M.\n";

namespace {

Error Usage(const std::string& message) { return Error::Invalid(message); }

Result<int> ParseInt(const std::string& flag, const std::string& text, int min, int max) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return Usage(flag + ": '" + text + "' is not a number");
  }
  if (value < min || value > max) {
    return Usage(flag + ": " + text + " is out of range (" + std::to_string(min) + ".." +
                 std::to_string(max) + ")");
  }
  return value;
}

}  // namespace

Result<ZrelaydConfig> ParseZrelaydFlags(const std::vector<std::string>& args) {
  ZrelaydConfig config;
  bool have_listen = false, have_backend = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::string value;
    bool inline_value = false;
    if (auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      inline_value = true;
    }
    auto need_value = [&]() -> Status {
      if (inline_value) return Status::Ok();
      if (i + 1 >= args.size()) return Usage(flag + ": missing value");
      value = args[++i];
      return Status::Ok();
    };
    if (flag == "--help" || flag == "-h") {
      config.help = true;
      continue;
    }
    if (flag == "--pin") {
      config.engine.pin_cpus = true;
      continue;
    }
    if (flag == "--log-closes") {
      config.log_closes = true;
      continue;
    }
    if (flag == "--backend-tls") {
      config.backend_tls = true;
      continue;
    }
    if (flag == "--backend-insecure") {
      config.tls_backend.verify = false;
      continue;
    }
    static const char* const kValueFlags[] = {
        "--listen",       "--backend",         "--mode",        "--workers",
        "--pipe-pool",    "--idle-timeout",    "--connect-timeout", "--drain-grace",
        "--pipe-size",    "--buffer-size",     "--budget",      "--tls-cert",
        "--tls-key",      "--alpn",            "--tls-min",     "--backend-ca",
        "--backend-sni"};
    if (std::find(std::begin(kValueFlags), std::end(kValueFlags), flag) == std::end(kValueFlags)) {
      return Usage("unknown flag '" + args[i] + "'");
    }
    if (Status st = need_value(); !st.ok()) return st.error();

    if (flag == "--listen" || flag == "--backend") {
      auto addr = Address::Parse(value);
      if (!addr.ok()) return Usage(flag + ": " + addr.error().message());
      (flag == "--listen" ? config.listen : config.backend) = addr.value();
      (flag == "--listen" ? have_listen : have_backend) = true;
    } else if (flag == "--mode") {
      if (value == "splice") {
        config.engine.mode = RelayMode::kSplice;
      } else if (value == "copy") {
        config.engine.mode = RelayMode::kCopy;
      } else if (value == "auto") {
        config.engine.mode = RelayMode::kAuto;
      } else {
        return Usage("--mode: '" + value + "' is not one of splice, copy, auto");
      }
    } else if (flag == "--workers") {
      auto n = ParseInt(flag, value, 1, 1024);
      if (!n.ok()) return n.error();
      config.engine.workers = n.value();
    } else if (flag == "--pipe-pool") {
      auto n = ParseInt(flag, value, 0, 1 << 20);
      if (!n.ok()) return n.error();
      config.engine.pipe_pool_cap = static_cast<size_t>(n.value());
    } else if (flag == "--idle-timeout" || flag == "--connect-timeout" ||
               flag == "--drain-grace") {
      auto d = ParseDuration(value, /*allow_zero=*/flag != "--connect-timeout");
      if (!d.ok()) return Usage(flag + ": " + d.error().message());
      if (flag == "--idle-timeout") config.engine.idle_timeout = d.value();
      if (flag == "--connect-timeout") config.connect_timeout = d.value();
      if (flag == "--drain-grace") config.drain_grace = d.value();
    } else if (flag == "--tls-cert") {
      config.tls_server.certs.push_back({value, ""});
    } else if (flag == "--tls-key") {
      if (config.tls_server.certs.empty() || !config.tls_server.certs.back().key_file.empty()) {
        return Usage("--tls-key '" + value + "' must follow its --tls-cert");
      }
      config.tls_server.certs.back().key_file = value;
    } else if (flag == "--alpn") {
      std::vector<std::string> protocols;
      for (size_t start = 0; start <= value.size();) {
        size_t comma = value.find(',', start);
        if (comma == std::string::npos) comma = value.size();
        protocols.push_back(value.substr(start, comma - start));
        start = comma + 1;
      }
      config.tls_server.alpn = config.tls_backend.alpn = protocols;
    } else if (flag == "--tls-min") {
      config.tls_server.min_version = config.tls_backend.min_version = value;
    } else if (flag == "--backend-ca") {
      config.tls_backend.ca_file = value;
    } else if (flag == "--backend-sni") {
      config.tls_backend.sni = value;
    } else if (flag == "--pipe-size" || flag == "--buffer-size" || flag == "--budget") {
      auto s = ParseSize(value);
      if (!s.ok()) return Usage(flag + ": " + s.error().message());
      if (flag == "--pipe-size") config.engine.pipe_size = s.value();
      if (flag == "--buffer-size") config.engine.buffer_size = s.value();
      if (flag == "--budget") config.engine.budget_per_event = s.value();
    }
  }
  if (config.help) return config;
  if (!have_listen) return Usage("--listen is required");
  if (!have_backend) return Usage("--backend is required");
  for (const auto& cert : config.tls_server.certs) {
    if (cert.key_file.empty()) return Usage("--tls-cert '" + cert.cert_file + "' has no --tls-key");
  }
  config.tls = !config.tls_server.certs.empty();
  bool backend_tls_flags = !config.tls_backend.ca_file.empty() || !config.tls_backend.sni.empty() ||
                           !config.tls_backend.verify;
  if (backend_tls_flags && !config.backend_tls) {
    return Usage("--backend-ca, --backend-sni and --backend-insecure need --backend-tls");
  }
  if (config.backend_tls && config.tls_backend.sni.empty() && !config.backend.is_unix()) {
    // No name given: the certificate must at least match the backend's IP.
    std::string host = config.backend.ToString();
    host.resize(host.rfind(':'));
    if (host.front() == '[') host = host.substr(1, host.size() - 2);
    config.tls_backend.verify_hostname = host;
  }
  return config;
}

}  // namespace zrelay
