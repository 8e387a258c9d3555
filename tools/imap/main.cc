// zrelay-imap: a STARTTLS IMAP gateway on zrelay's embedding API. It greets
// clients, upgrades them to TLS, reads LOGIN, logs in at the backend the
// user name routes to, and leaves the rest of the session to the engine.
//
//   zrelay-imap --listen :143 --tls-listen :993 --tls-cert site.pem
//               --tls-key site.key --route alice=10.0.0.5:143 --default 10.0.0.6:143
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "engine/address.h"
#include "relay/connection.h"
#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "tools/cli/flag_set.h"
#include "tools/cli/values.h"
#include "tools/imap/imap_session.h"

namespace zrelay::imap {
namespace {

struct Flags {
  std::optional<Address> listen, tls_listen;
  std::string cert, key, default_backend, backend_ca;
  std::vector<std::string> routes;
  bool backend_tls = false;
  bool help = false;
  Duration timeout = seconds(60);
};

Result<Backend> ParseBackend(const std::string& text) {
  auto address = Address::Parse(text);
  if (!address) return address.error();
  return Backend{*address, HostOf(text)};
}

// Flags -> gateway settings; the TLS contexts stay owned by the caller.
Status Configure(const Flags& flags, GatewayConfig& config, TlsContext& server,
                 TlsContext& client) {
  if (flags.cert.empty() || flags.key.empty()) {
    return Error::Invalid("--tls-cert and --tls-key are required");
  }
  if (!flags.listen && !flags.tls_listen) {
    return Error::Invalid("--listen or --tls-listen is required");
  }
  if (flags.routes.empty() && flags.default_backend.empty()) {
    return Error::Invalid("--route or --default is required");
  }
  for (const std::string& route : flags.routes) {
    size_t eq = route.find('=');
    if (eq == 0 || eq == std::string::npos) {
      return Error::Invalid("--route: '" + route + "' is not USER=HOST:PORT");
    }
    auto backend = ParseBackend(route.substr(eq + 1));
    if (!backend) return Error::Invalid("--route: " + backend.error().message());
    if (!config.routes.emplace(route.substr(0, eq), *backend).second) {
      return Error::Invalid("--route: user '" + route.substr(0, eq) + "' routed twice");
    }
  }
  if (!flags.default_backend.empty()) {
    auto backend = ParseBackend(flags.default_backend);
    if (!backend) return Error::Invalid("--default: " + backend.error().message());
    config.default_backend = *backend;
  }
  TlsServerConfig server_config;
  server_config.certs = {{flags.cert, flags.key}};
  auto built = BuildServerContext(server_config);
  if (!built) return built.error();
  server = std::move(*built);
  config.server_tls = server.get();
  if (!flags.backend_ca.empty() && !flags.backend_tls) {
    return Error::Invalid("--backend-ca needs --backend-tls");
  }
  if (flags.backend_tls) {
    TlsClientConfig client_config;
    client_config.ca_file = flags.backend_ca;
    auto backend = BuildClientContext(client_config);
    if (!backend) return Error::Invalid("--backend-ca: " + backend.error().message());
    client = std::move(*backend);
    config.backend_tls = client.get();
  }
  config.timeout = flags.timeout;
  return Status::Ok();
}

// Fills `flags`, and `usage` with the --help text.
Status ParseFlags(const std::vector<std::string>& args, Flags& flags, std::string& usage) {
  CLI::App app("zrelay-imap: a STARTTLS IMAP gateway that routes by user name");
  app.name("zrelay-imap");
  app.set_help_flag();                            // ours below: --help prints, it does not throw
  FlagSet set(app, FlagSet::Repeats::kLastWins);  // as zrelayd; --route adds up
  auto text = [](std::string* field) {
    return [field](const std::string& value) {
      *field = value;
      return Status::Ok();
    };
  };
  auto address = [](std::optional<Address>* field) {
    return [field](const std::string& value) -> Status {
      auto parsed = Address::Parse(value);
      if (!parsed) return parsed.error();
      *field = *parsed;
      return Status::Ok();
    };
  };
  set.Value("--listen", "ADDR", "plain IMAP with STARTTLS", address(&flags.listen));
  set.Value("--tls-listen", "ADDR", "IMAP over implicit TLS", address(&flags.tls_listen));
  set.Value("--tls-cert", "FILE", "certificate chain (PEM)", text(&flags.cert));
  set.Value("--tls-key", "FILE", "private key (PEM)", text(&flags.key));
  // Repeated on purpose, so outside FlagSet's one-value flags.
  app.add_option("--route", flags.routes, "this user's backend (repeatable)")
      ->type_name("USER=HOST:PORT");
  set.Value("--default", "HOST:PORT", "backend of users without a --route",
            text(&flags.default_backend));
  set.Value("--backend-ca", "FILE", "CA that signed the backends' certificates",
            text(&flags.backend_ca));
  set.Value("--timeout", "DUR", "bound on each step before the relay (default: 60s)",
            [&flags](const std::string& value) -> Status {
              auto timeout = ParseDuration(value);
              if (!timeout) return timeout.error();
              flags.timeout = *timeout;
              return Status::Ok();
            });
  set.Bool("--backend-tls", &flags.backend_tls, "speak implicit TLS to the backends");
  set.Bool("-h,--help", &flags.help, "this text");
  usage = app.help();
  return set.Parse(args);
}

int Main(int argc, char** argv) {
  Flags flags;
  GatewayConfig config;
  TlsContext server_tls, backend_tls;
  std::string usage;
  Status ok = ParseFlags({argv + 1, argv + argc}, flags, usage);
  if (ok && flags.help) {
    std::fputs(usage.c_str(), stdout);
    return 0;
  }
  if (ok) ok = Configure(flags, config, server_tls, backend_tls);
  if (!ok) {
    std::fprintf(stderr, "zrelay-imap: %s\n", ok.error().message().c_str());
    return 2;
  }
  // Blocked before the workers start, so only sigwait below sees them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto engine = Engine::Start({.workers = 2, .mode = RelayMode::kAuto});
  if (!engine) {
    std::fprintf(stderr, "zrelay-imap: %s\n", engine.error().message().c_str());
    return 1;
  }
  std::string banner;
  for (bool tls : {false, true}) {
    const std::optional<Address>& address = tls ? flags.tls_listen : flags.listen;
    if (!address) continue;
    ListenOptions listen;
    listen.address = *address;
    listen.tls = tls ? config.server_tls : nullptr;  // the engine does the handshake first
    listen.on_accept = [&config, tls](ConnectionPtr client) {
      ServeClient(config, std::move(client), tls);
    };
    auto id = (*engine)->Listen(listen);
    if (!id) {
      std::fprintf(stderr, "zrelay-imap: %s\n", id.error().message().c_str());
      return 1;
    }
    banner += (banner.empty() ? "" : ", ") + (*engine)->ListenAddress(*id)->ToString() +
              (tls ? " (TLS)" : " (STARTTLS)");
  }
  std::fprintf(stderr, "zrelay-imap: listening on %s\n", banner.c_str());
  int signal_number = 0;
  sigwait(&stop, &signal_number);
  (*engine)->Drain(seconds(5));
  return 0;
}

}  // namespace
}  // namespace zrelay::imap

int main(int argc, char** argv) { return zrelay::imap::Main(argc, argv); }
