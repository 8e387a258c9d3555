#include "tools/zrelayd_flags.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace zrelay {
namespace {

Result<ZrelaydConfig> Parse(std::vector<std::string> args) { return ParseZrelaydFlags(args); }

void ExpectUsageError(std::vector<std::string> args, const std::string& mentions) {
  auto r = Parse(args);
  ASSERT_FALSE(r.ok()) << "should reject: " << ::testing::PrintToString(args);
  EXPECT_NE(r.error().message().find(mentions), std::string::npos) << r.error().message();
}

TEST(ZrelaydFlags, ParsesEveryFlag) {
  auto r = Parse({"--listen", "127.0.0.1:8080", "--backend=[::1]:9000", "--mode", "auto",
                  "--workers", "3", "--pin", "--idle-timeout", "1.5s", "--connect-timeout=250ms",
                  "--drain-grace", "2m", "--pipe-size", "256k", "--pipe-pool", "16",
                  "--buffer-size", "32k", "--budget", "1M", "--log-closes", "--handshake-timeout",
                  "3s", "--max-connections", "5000", "--user", "nobody"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->listen.ToString(), "127.0.0.1:8080");
  EXPECT_EQ(r->backend.ToString(), "[::1]:9000");
  EXPECT_EQ(r->engine.mode, RelayMode::kAuto);
  EXPECT_EQ(r->engine.workers, 3);
  EXPECT_TRUE(r->engine.pin_cpus);
  EXPECT_EQ(r->engine.idle_timeout, milliseconds(1500));
  EXPECT_EQ(r->connect_timeout, milliseconds(250));
  EXPECT_EQ(r->drain_grace, seconds(120));
  EXPECT_EQ(r->engine.pipe_size, 256u << 10);
  EXPECT_EQ(r->engine.pipe_pool_cap, 16u);
  EXPECT_EQ(r->engine.buffer_size, 32u << 10);
  EXPECT_EQ(r->engine.budget_per_event, 1u << 20);
  EXPECT_TRUE(r->log_closes);
  EXPECT_EQ(r->engine.handshake_timeout, seconds(3));
  EXPECT_EQ(r->max_connections, 5000u);
  EXPECT_EQ(r->user, "nobody");
}

TEST(ZrelaydFlags, Defaults) {
  auto r = Parse({"--listen", ":1", "--backend", ":2"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->engine.handshake_timeout, seconds(10));
  EXPECT_EQ(r->max_connections, 0u);
  EXPECT_EQ(r->user, "");
  EXPECT_FALSE(r->log_closes);
  EXPECT_FALSE(r->engine.pin_cpus);
  EXPECT_FALSE(r->backend_tls);
  EXPECT_TRUE(r->tls_backend.verify);
}

// Every boolean flag, bare and with each spelling both ways; anything else is
// a usage error naming the flag. Regression: "--backend-insecure=false"
// turned certificate verification off.
TEST(ZrelaydFlags, BooleanFlagsBothWays) {
  struct Case {
    std::string flag;
    std::function<bool(const ZrelaydConfig&)> get;  // the flag's meaning, true when set
  };
  const Case cases[] = {
      {"--pin", [](const ZrelaydConfig& c) { return c.engine.pin_cpus; }},
      {"--log-closes", [](const ZrelaydConfig& c) { return c.log_closes; }},
      {"--backend-tls", [](const ZrelaydConfig& c) { return c.backend_tls; }},
      {"--backend-insecure", [](const ZrelaydConfig& c) { return !c.tls_backend.verify; }},
      {"--help", [](const ZrelaydConfig& c) { return c.help; }},
  };
  for (const Case& k : cases) {
    auto parse = [&](const std::string& arg) {
      return Parse({"--listen", ":1", "--backend", ":2", "--backend-tls", arg});
    };
    auto bare = parse(k.flag);
    ASSERT_TRUE(bare.ok()) << k.flag << ": " << bare.error().message();
    EXPECT_TRUE(k.get(*bare)) << k.flag;
    for (const char* yes : {"true", "yes", "1", "on", "TRUE"}) {
      auto r = parse(k.flag + "=" + yes);
      ASSERT_TRUE(r.ok()) << k.flag << "=" << yes << ": " << r.error().message();
      EXPECT_TRUE(k.get(*r)) << k.flag << "=" << yes;
    }
    for (const char* no : {"false", "no", "0", "off", "False"}) {
      auto r = parse(k.flag + "=" + no);
      ASSERT_TRUE(r.ok()) << k.flag << "=" << no << ": " << r.error().message();
      if (k.flag != "--backend-tls") {
        EXPECT_FALSE(k.get(*r)) << k.flag << "=" << no;
      }
    }
    for (const char* bad : {"maybe", "2", "enable", "t", ""}) {
      ExpectUsageError({"--listen", ":1", "--backend", ":2", k.flag + "=" + bad},
                       k.flag + ": '" + bad + "' is not a boolean");
    }
  }
  // --backend-tls alone, since the loop above always adds a bare one.
  auto off = Parse({"--listen", ":1", "--backend", ":2", "--backend-tls=no"});
  ASSERT_TRUE(off.ok()) << off.error().message();
  EXPECT_FALSE(off->backend_tls);
  auto on = Parse({"--listen", ":1", "--backend", ":2", "--backend-tls=no", "--backend-tls=yes"});
  ASSERT_TRUE(on.ok()) << on.error().message();
  EXPECT_TRUE(on->backend_tls);  // the last one wins
  // A boolean's value never comes from the next argument.
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--pin", "false"},
                   "unexpected argument 'false'");
}

// The backend's name for TLS: --backend-sni, else the host name typed in
// --backend (sent as SNI and verified), else its IP (verified, no SNI).
// Regression: "--backend localhost:P --backend-tls" verified 127.0.0.1.
TEST(ZrelaydFlags, BackendTlsNameComesFromTheBackendHost) {
  auto by_name = Parse({"--listen", ":1", "--backend", "localhost:2", "--backend-tls"});
  ASSERT_TRUE(by_name.ok()) << by_name.error().message();
  EXPECT_EQ(by_name->backend_host, "localhost");
  EXPECT_EQ(by_name->tls_backend.sni, "localhost");
  EXPECT_EQ(by_name->tls_backend.verify_hostname, "");

  auto by_ip = Parse({"--listen", ":1", "--backend", "127.0.0.1:2", "--backend-tls"});
  ASSERT_TRUE(by_ip.ok()) << by_ip.error().message();
  EXPECT_EQ(by_ip->tls_backend.sni, "");
  EXPECT_EQ(by_ip->tls_backend.verify_hostname, "127.0.0.1");

  auto by_ip6 = Parse({"--listen", ":1", "--backend", "[::1]:2", "--backend-tls"});
  ASSERT_TRUE(by_ip6.ok()) << by_ip6.error().message();
  EXPECT_EQ(by_ip6->tls_backend.sni, "");
  EXPECT_EQ(by_ip6->tls_backend.verify_hostname, "::1");

  auto explicit_sni = Parse({"--listen", ":1", "--backend", "localhost:2", "--backend-tls",
                             "--backend-sni", "api.example"});
  ASSERT_TRUE(explicit_sni.ok()) << explicit_sni.error().message();
  EXPECT_EQ(explicit_sni->tls_backend.sni, "api.example");

  auto plain = Parse({"--listen", ":1", "--backend", "localhost:2"});
  ASSERT_TRUE(plain.ok()) << plain.error().message();
  EXPECT_EQ(plain->tls_backend.sni, "");
}

TEST(ZrelaydFlags, TlsCertsPairWithTheirKeys) {
  auto r = Parse({"--listen", ":1", "--backend", ":2", "--tls-cert", "a.pem", "--tls-key", "a.key",
                  "--log-closes", "--tls-cert=b.pem", "--tls-key", "b.key", "--tls-min", "TLS1.3"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->tls_server.certs.size(), 2u);
  EXPECT_TRUE(r->tls);
  EXPECT_EQ(r->tls_server.certs[0].cert_file, "a.pem");
  EXPECT_EQ(r->tls_server.certs[0].key_file, "a.key");
  EXPECT_EQ(r->tls_server.certs[1].cert_file, "b.pem");
  EXPECT_EQ(r->tls_server.certs[1].key_file, "b.key");
  EXPECT_EQ(r->tls_server.min_version, "TLS1.3");
  EXPECT_EQ(r->tls_backend.min_version, "TLS1.3");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--tls-key", "a.key"},
                   "--tls-key 'a.key' must follow its --tls-cert");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--tls-cert", "a.pem"},
                   "--tls-cert 'a.pem' has no --tls-key");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--tls-cert", "a.pem", "b.pem"},
                   "unexpected argument 'b.pem'");
}

TEST(ZrelaydFlags, BadInputsNameTheFlagAndValue) {
  ExpectUsageError({"--backend", "127.0.0.1:1"}, "--listen is required");
  ExpectUsageError({"--listen", "127.0.0.1:1"}, "--backend is required");
  ExpectUsageError({"--listen", "127.0.0.1:99999", "--backend", "127.0.0.1:1"}, "99999");
  ExpectUsageError({"--listen", "nope", "--backend", "127.0.0.1:1"}, "--listen");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--mode", "fast"}, "'fast'");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--workers", "two"},
                   "--workers: bad number 'two'");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--workers", "0"}, "between 1 and 1024");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--max-connections", "lots"},
                   "--max-connections: bad number 'lots'");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--handshake-timeout", "0"},
                   "--handshake-timeout: bad duration '0'");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--user", ""}, "--user: empty user name");
  // Regression: a bad --tls-min was found only when the TLS context was built (exit 1).
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--tls-min", "TLS1.9"}, "--tls-min: ");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--tls-min", "TLS1.9"}, "'TLS1.9'");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--backend-ca", "ca.pem"},
                   "need --backend-tls");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--backend-insecure"},
                   "need --backend-tls");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--pipe-size", "1X"}, "unknown suffix");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--idle-timeout", "soon"}, "--idle-timeout");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--idle-timeout", "5q"}, "'5q'");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--bogus"}, "unknown flag '--bogus'");
  ExpectUsageError({"--listen"}, "--listen");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "stray"}, "unexpected argument 'stray'");
}

TEST(ZrelaydFlags, ConfigAndCheckTakeAFileAndNothingElse) {
  auto config = Parse({"--config", "zrelayd.toml"});
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->config_file, "zrelayd.toml");
  EXPECT_EQ(config->check_file, "");
  auto check = Parse({"--check=zrelayd.toml"});
  ASSERT_TRUE(check.ok()) << check.error().message();
  EXPECT_EQ(check->check_file, "zrelayd.toml");
  EXPECT_EQ(check->config_file, "");

  ExpectUsageError({"--config", "z.toml", "--listen", ":1"},
                   "--listen cannot be combined with --config");
  ExpectUsageError({"--backend", ":2", "--config", "z.toml"},
                   "--backend cannot be combined with --config");
  ExpectUsageError({"--check", "z.toml", "--workers", "2"},
                   "--workers cannot be combined with --check");
  ExpectUsageError({"--config", "z.toml", "--pin"}, "--pin cannot be combined with --config");
  ExpectUsageError({"--config", "a.toml", "--check", "b.toml"}, "give one of them");
  ExpectUsageError({"--config", ""}, "--config: empty file name");
  ExpectUsageError({"--config"}, "--config");
}

TEST(ZrelaydFlags, UpgradeGoesWithConfigOnly) {
  auto upgrade = Parse({"--config", "zrelayd.toml", "--upgrade"});
  ASSERT_TRUE(upgrade.ok()) << upgrade.error().message();
  EXPECT_TRUE(upgrade->upgrade);
  EXPECT_FALSE(Parse({"--config", "zrelayd.toml"})->upgrade);
  ExpectUsageError({"--upgrade", "--listen", ":1", "--backend", ":2"},
                   "--upgrade needs --config");
  ExpectUsageError({"--check", "z.toml", "--upgrade"}, "--upgrade cannot be combined with --check");
}

TEST(ZrelaydFlags, HelpNeedsNothingElse) {
  auto r = Parse({"--help"});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->help);
  std::string help = ZrelaydUsage();
  for (const char* flag : {"--listen", "--backend", "--handshake-timeout", "--max-connections",
                           "--backend-insecure", "--tls-min", "--user", "--config", "--check",
                           "--upgrade", "SIGHUP", "Exit status"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace zrelay
