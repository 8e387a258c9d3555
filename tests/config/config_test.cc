// zrelayd's file parsed: the shipped example, every default (and that they
// match the engine's options and zrelayd's flags), every global and listener
// key, inline tables, and LoadConfigFile's errors naming the path.
#include "tools/config/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "tests/config/config_test_util.h"
#include "tests/config/parse_util.h"

namespace zrelay {
namespace {

using testing::kMinimal;
using testing::Parse;
using testing::WithListenerKeys;

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

TEST(Config, ExampleFileParses) {
  // The real file, as shipped (a data dependency of this test).
  Result<FileConfig> config = LoadConfigFile("examples/zrelayd.toml");
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->workers, 2);
  EXPECT_EQ(config->mode, RelayMode::kAuto);
  EXPECT_EQ(config->drain_grace, seconds(30));
  EXPECT_EQ(config->upgrade_socket, "/run/zrelayd/upgrade.sock");
  ASSERT_TRUE(config->admin_listen.has_value());
  EXPECT_EQ(config->admin_listen->ToString(), "127.0.0.1:9901");
  EXPECT_EQ(config->log_file, "/var/log/zrelayd/zrelayd.log");
  EXPECT_EQ(config->access_log, "/var/log/zrelayd/access.log");
  ASSERT_EQ(config->listeners.size(), 2u);

  const ListenerConfig& web = config->listeners[0];
  EXPECT_EQ(web.name, "web");
  ASSERT_EQ(web.listen.size(), 2u);
  EXPECT_EQ(web.listen[0].ToString(), "127.0.0.1:8080");
  EXPECT_EQ(web.listen[1].ToString(), "[::1]:8080");
  EXPECT_EQ(web.balance, BalancePolicy::kLeastConn);
  EXPECT_EQ(web.connect_timeout, seconds(2));
  EXPECT_EQ(web.idle_timeout, std::chrono::minutes(5));
  EXPECT_EQ(web.max_connections, 10000u);
  EXPECT_EQ(web.retries, 2);
  EXPECT_FALSE(web.tls.has_value());
  EXPECT_FALSE(web.backend_tls.has_value());
  ASSERT_TRUE(web.health.has_value());
  EXPECT_EQ(web.health->interval, seconds(2));
  EXPECT_EQ(web.health->timeout, seconds(1));
  EXPECT_EQ(web.health->fall, 3);
  EXPECT_EQ(web.health->rise, 2);
  ASSERT_EQ(web.backends.size(), 3u);
  EXPECT_EQ(web.backends[0].address, "app1.internal:9000");
  EXPECT_FALSE(web.backends[0].literal.has_value());
  EXPECT_EQ(web.backends[0].host, "app1.internal");
  EXPECT_EQ(web.backends[0].port, 9000);
  EXPECT_EQ(web.backends[0].weight, 2u);
  EXPECT_EQ(web.backends[1].address, "10.0.0.12:9000");
  ASSERT_TRUE(web.backends[1].literal.has_value());
  EXPECT_EQ(web.backends[1].literal->ToString(), "10.0.0.12:9000");
  EXPECT_EQ(web.backends[1].host, "");
  EXPECT_EQ(web.backends[1].weight, 1u);
  ASSERT_TRUE(web.backends[2].literal.has_value());
  EXPECT_EQ(web.backends[2].literal->ToString(), "[fd00::13]:9000");
  EXPECT_EQ(web.backends[2].weight, 3u);

  const ListenerConfig& tls = config->listeners[1];
  EXPECT_EQ(tls.name, "web-tls");
  ASSERT_EQ(tls.listen.size(), 1u);
  EXPECT_EQ(tls.listen[0].ToString(), "0.0.0.0:8443");
  EXPECT_EQ(tls.balance, BalancePolicy::kMaglev);
  EXPECT_EQ(tls.handshake_timeout, seconds(5));
  ASSERT_TRUE(tls.tls.has_value());
  ASSERT_EQ(tls.tls->certs.size(), 2u);
  EXPECT_EQ(tls.tls->certs[0].cert_file, "/etc/zrelay/example.com.pem");
  EXPECT_EQ(tls.tls->certs[0].key_file, "/etc/zrelay/example.com.key");
  EXPECT_EQ(tls.tls->certs[1].cert_file, "/etc/zrelay/api.example.com.pem");
  EXPECT_EQ(tls.tls->certs[1].key_file, "/etc/zrelay/api.example.com.key");
  EXPECT_EQ(tls.tls->min_version, "TLS1.3");
  EXPECT_EQ(tls.tls->alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  ASSERT_TRUE(tls.backend_tls.has_value());
  EXPECT_TRUE(tls.backend_tls->verify);
  EXPECT_EQ(tls.backend_tls->ca_file, "/etc/zrelay/internal-ca.pem");
  EXPECT_EQ(tls.backend_tls->sni, "");
  EXPECT_EQ(tls.backend_tls->min_version, "TLS1.3");
  EXPECT_EQ(tls.backend_tls->alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  ASSERT_TRUE(tls.health.has_value());
  EXPECT_EQ(tls.health->interval, seconds(5));
  EXPECT_EQ(tls.health->timeout, seconds(2));
  EXPECT_EQ(tls.health->fall, 3);
  EXPECT_EQ(tls.health->rise, 2);
  ASSERT_EQ(tls.backends.size(), 3u);
  EXPECT_EQ(tls.backends[0].host, "app1.internal");
  EXPECT_EQ(tls.backends[0].port, 9443);
  EXPECT_EQ(tls.backends[2].literal->ToString(), "[fd00::13]:9443");
}

TEST(Config, EveryDefault) {
  Result<FileConfig> config = Parse(kMinimal);
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->workers, 0);
  EXPECT_EQ(config->mode, RelayMode::kSplice);
  EXPECT_FALSE(config->pin);
  EXPECT_EQ(config->pipe_size, 1u << 20);
  EXPECT_EQ(config->pipe_pool, 1024u);
  EXPECT_EQ(config->buffer_size, 64u << 10);
  EXPECT_EQ(config->budget, 256u << 10);
  EXPECT_EQ(config->drain_grace, seconds(10));
  EXPECT_EQ(config->user, "");
  EXPECT_FALSE(config->log_closes);
  ASSERT_EQ(config->listeners.size(), 1u);
  const ListenerConfig& listener = config->listeners[0];
  EXPECT_EQ(listener.balance, BalancePolicy::kRoundRobin);
  EXPECT_EQ(listener.connect_timeout, seconds(5));
  EXPECT_EQ(listener.idle_timeout, Duration::zero());
  EXPECT_EQ(listener.handshake_timeout, seconds(10));
  EXPECT_EQ(listener.resolve_interval, seconds(30));
  EXPECT_EQ(listener.max_connections, 0u);
  EXPECT_EQ(listener.retries, 0);
  EXPECT_EQ(listener.backlog, 1024);
  EXPECT_FALSE(listener.tls.has_value());
  EXPECT_FALSE(listener.backend_tls.has_value());
  EXPECT_FALSE(listener.health.has_value());
  ASSERT_EQ(listener.backends.size(), 1u);
  EXPECT_EQ(listener.backends[0].weight, 1u);
}

TEST(Config, DefaultsMatchTheEngineAndZrelaydFlags) {
  // zrelayd's flags default to the engine's options: the file must too.
  Result<FileConfig> config = Parse(kMinimal);
  ASSERT_TRUE(config.ok()) << config.error().message();
  const EngineOptions engine;
  EXPECT_EQ(config->workers, engine.workers);
  EXPECT_EQ(config->mode, engine.mode);
  EXPECT_EQ(config->pin, engine.pin_cpus);
  EXPECT_EQ(config->pipe_size, engine.pipe_size);
  EXPECT_EQ(config->pipe_pool, engine.pipe_pool_cap);
  EXPECT_EQ(config->buffer_size, engine.buffer_size);
  EXPECT_EQ(config->budget, engine.budget_per_event);
  const ListenOptions listen;
  const ListenerConfig& listener = config->listeners[0];
  EXPECT_EQ(listener.idle_timeout, engine.idle_timeout);
  EXPECT_EQ(listener.handshake_timeout, engine.handshake_timeout);
  EXPECT_EQ(listener.connect_timeout, listen.connect_timeout);
  EXPECT_EQ(listener.backlog, listen.backlog);
}

TEST(Config, HealthAndTlsDefaults) {
  Result<FileConfig> config = Parse(WithListenerKeys(R"(
tls_cert = "site.pem"
tls_key = "site.key"
backend_tls = true
[listener.health]
)"));
  ASSERT_TRUE(config.ok()) << config.error().message();
  const ListenerConfig& listener = config->listeners[0];
  ASSERT_TRUE(listener.health.has_value());
  EXPECT_EQ(listener.health->interval, seconds(2));
  EXPECT_EQ(listener.health->timeout, seconds(1));
  EXPECT_EQ(listener.health->fall, 3);
  EXPECT_EQ(listener.health->rise, 2);
  ASSERT_TRUE(listener.tls.has_value());
  ASSERT_EQ(listener.tls->certs.size(), 1u);
  EXPECT_EQ(listener.tls->certs[0].cert_file, "site.pem");
  EXPECT_EQ(listener.tls->certs[0].key_file, "site.key");
  EXPECT_EQ(listener.tls->min_version, "TLS1.2");
  EXPECT_TRUE(listener.tls->alpn.empty());
  ASSERT_TRUE(listener.backend_tls.has_value());
  EXPECT_TRUE(listener.backend_tls->verify);
  EXPECT_EQ(listener.backend_tls->ca_file, "");
  EXPECT_EQ(listener.backend_tls->sni, "");
  EXPECT_EQ(listener.backend_tls->min_version, "TLS1.2");
}

TEST(Config, EveryGlobalKey) {
  Result<FileConfig> config = Parse(R"(
workers = 3
mode = "copy"
pin = true
pipe_size = "256k"
pipe_pool = 16
buffer_size = 32768
budget = "1M"
drain_grace = "0"
user = "zrelay"
log_closes = true
)" + std::string(kMinimal));
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->workers, 3);
  EXPECT_EQ(config->mode, RelayMode::kCopy);
  EXPECT_TRUE(config->pin);
  EXPECT_EQ(config->pipe_size, 256u << 10);
  EXPECT_EQ(config->pipe_pool, 16u);
  EXPECT_EQ(config->buffer_size, 32768u);
  EXPECT_EQ(config->budget, 1u << 20);
  EXPECT_EQ(config->drain_grace, Duration::zero());
  EXPECT_EQ(config->user, "zrelay");
  EXPECT_TRUE(config->log_closes);
  EXPECT_EQ(Parse("mode = \"splice\"\n" + std::string(kMinimal))->mode, RelayMode::kSplice);
}

TEST(Config, EveryListenerKey) {
  Result<FileConfig> config = Parse(WithListenerKeys(R"(
balance = "round-robin"
connect_timeout = "250ms"
idle_timeout = "0"
handshake_timeout = "3s"
resolve_interval = "1m"
max_connections = 500
retries = 16
backlog = 128
tls_cert = ["a.pem", "b.pem"]
tls_key = ["a.key", "b.key"]
tls_min = "TLSv1.3"
alpn = "h2"
backend_tls = true
backend_ca = "ca.pem"
backend_sni = "app.internal"
backend_insecure = true
)"));
  ASSERT_TRUE(config.ok()) << config.error().message();
  const ListenerConfig& listener = config->listeners[0];
  EXPECT_EQ(listener.balance, BalancePolicy::kRoundRobin);
  EXPECT_EQ(listener.connect_timeout, milliseconds(250));
  EXPECT_EQ(listener.idle_timeout, Duration::zero());
  EXPECT_EQ(listener.handshake_timeout, seconds(3));
  EXPECT_EQ(listener.resolve_interval, seconds(60));
  EXPECT_EQ(listener.max_connections, 500u);
  EXPECT_EQ(listener.retries, 16);
  EXPECT_EQ(listener.backlog, 128);
  ASSERT_TRUE(listener.tls.has_value());
  ASSERT_EQ(listener.tls->certs.size(), 2u);
  EXPECT_EQ(listener.tls->certs[1].cert_file, "b.pem");
  EXPECT_EQ(listener.tls->certs[1].key_file, "b.key");
  EXPECT_EQ(listener.tls->min_version, "TLSv1.3");
  EXPECT_EQ(listener.tls->alpn, std::vector<std::string>{"h2"});
  ASSERT_TRUE(listener.backend_tls.has_value());
  EXPECT_FALSE(listener.backend_tls->verify);
  EXPECT_EQ(listener.backend_tls->ca_file, "ca.pem");
  EXPECT_EQ(listener.backend_tls->sni, "app.internal");
  EXPECT_EQ(listener.backend_tls->min_version, "TLSv1.3");
  EXPECT_EQ(listener.backend_tls->alpn, std::vector<std::string>{"h2"});
}

TEST(Config, InlineTablesWorkLikeHeaders) {
  Result<FileConfig> config = Parse(R"(
listener = [{ name = "a", listen = ":0", health = { fall = 5 }, backend = [
  { address = "unix:/run/app.sock", weight = 7 },
] }]
)");
  ASSERT_TRUE(config.ok()) << config.error().message();
  ASSERT_TRUE(config->listeners[0].health.has_value());
  EXPECT_EQ(config->listeners[0].health->fall, 5);
  EXPECT_EQ(config->listeners[0].backends[0].weight, 7u);
}

TEST(Config, LoadConfigFileNamesThePath) {
  const std::string dir = TempDir();
  const std::string path = dir + "/zrelayd-config-test.toml";
  {
    std::ofstream out(path);
    out << kMinimal << "weight = \"two\"\n";
  }
  Result<FileConfig> config = LoadConfigFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().message(),
            path + ":8: listener[0].backend[0].weight: expected an integer 1..256, got \"two\"");
  {
    std::ofstream out(path);
    out << kMinimal;
  }
  config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->listeners[0].name, "web");

  config = LoadConfigFile(dir + "/no-such.toml");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().message(),
            "config file '" + dir + "/no-such.toml': No such file or directory");
  EXPECT_EQ(config.error().code(), std::errc::no_such_file_or_directory);

  config = LoadConfigFile(dir);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().message(), "config file '" + dir + "': Is a directory");

  if (::geteuid() != 0) {  // root reads a file whatever its mode
    ASSERT_EQ(::chmod(path.c_str(), 0), 0);
    config = LoadConfigFile(path);
    ASSERT_FALSE(config.ok());
    EXPECT_EQ(config.error().message(), "config file '" + path + "': Permission denied");
  }
  ::unlink(path.c_str());
}

TEST(Config, LoadConfigFileRefusesHugeFiles) {
  // /dev/zero never ends: the size cap stops the read.
  Result<FileConfig> config = LoadConfigFile("/dev/zero");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().message(),
            "config file '/dev/zero': larger than 16 MiB, not a configuration file");
}

}  // namespace
}  // namespace zrelay
