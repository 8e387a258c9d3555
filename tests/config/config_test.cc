#include "tools/config/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "tests/config/parse_util.h"

namespace zrelay {
namespace {

using testing::ErrorOf;
using testing::Parse;

// The smallest file that parses: one listener, one backend.
constexpr char kMinimal[] = R"(
[[listener]]
name = "web"
listen = "127.0.0.1:8080"

[[listener.backend]]
address = "10.0.0.1:9000"
)";

// kMinimal's listener with `lines` added to it (line 5 on).
std::string WithListenerKeys(std::string_view lines) {
  return "\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\n" + std::string(lines) +
         "\n[[listener.backend]]\naddress = \"10.0.0.1:9000\"\n";
}

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

TEST(Config, TomlSyntaxErrorsHaveLineAndColumn) {
  // The descriptions are toml++'s; the file, line and column are ours to get right.
  EXPECT_EQ(ErrorOf("workers = 2\nmode = \"auto\nx = 1\n"),
            "zrelayd.toml:2:13: Error while parsing string: unescaped control characters other "
            "than TAB (U+0009) are explicitly prohibited");
  EXPECT_EQ(ErrorOf("workers = 2\nworkers = 3\n"),
            "zrelayd.toml:2:11: Error while parsing key-value pair: cannot redefine existing "
            "integer 'workers'");
  EXPECT_EQ(ErrorOf("[[listener]]\nlisten = [\"a\",\n"),
            "zrelayd.toml:2:16: Error while parsing array: encountered end-of-file");
  EXPECT_EQ(ErrorOf("= 1\n"),
            "zrelayd.toml:1:1: Error while parsing root table: expected keys, tables, whitespace "
            "or comments, saw '='");
  EXPECT_EQ(ErrorOf("[[listener]]\nbackend = { address = \"10.0.0.2:1\" }\n"
                    "[[listener.backend]]\n"),
            "zrelayd.toml:3:1: Error while parsing table header: cannot redefine existing table "
            "'listener.backend' as array-of-tables");
  EXPECT_EQ(ErrorOf("user = \"a\xff\"\n"), "zrelayd.toml:1:9: Encountered invalid utf-8 sequence");
  EXPECT_EQ(ErrorOf(std::string("user = \"a\0\"\n", 12)),
            "zrelayd.toml:1:10: control character U+0000 is not allowed in a TOML file");
  EXPECT_EQ(ErrorOf("[|istener]\n"),
            "zrelayd.toml:1:2: a table header's key starts with '|', not a letter, digit, '-', "
            "'_' or quote");
  // Non-ASCII text toml++ 3.3 would misread is refused, in strings it is kept.
  EXPECT_EQ(ErrorOf("workers =7i0p==\"\"\"K\xef\xbb\xbeK\n"),
            "zrelayd.toml:1:11: Error while parsing decimal integer: expected digit, saw 'i'");
  Result<FileConfig> accented =
      Parse("user = \"r\xc3\xa9my\" # caf\xc3\xa9" + std::string(kMinimal));
  ASSERT_TRUE(accented.ok()) << accented.error().message();
  EXPECT_EQ(accented->user, "r\xc3\xa9my");
  // A value quoting a newline (a TOML escape) keeps the message on one line.
  EXPECT_EQ(ErrorOf("[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:80\\n\"\n"),
            "zrelayd.toml:3: listener[0].listen: bad address '127.0.0.1:80\\u000a': port "
            "'80\\u000a' is not a number");
}

struct ErrorCase {
  std::string text;
  std::string message;
};

void ExpectErrors(const std::vector<ErrorCase>& cases) {
  for (const ErrorCase& c : cases) {
    EXPECT_EQ(ErrorOf(c.text), c.message) << "in:\n" << c.text;
  }
}

TEST(Config, UnknownKeysAtEveryLevel) {
  ExpectErrors({
      {"wokers = 2\n" + std::string(kMinimal),
       "zrelayd.toml:1: wokers: unknown key (did you mean \"workers\"?)"},
      {"log-closes = true\n" + std::string(kMinimal),
       "zrelayd.toml:1: log-closes: unknown key (did you mean \"log_closes\"?)"},
      {"Workers = 2\n" + std::string(kMinimal),
       "zrelayd.toml:1: Workers: unknown key (did you mean \"workers\"?)"},
      {"threads = 2\n" + std::string(kMinimal), "zrelayd.toml:1: threads: unknown key"},
      {WithListenerKeys("balanse = \"maglev\""),
       "zrelayd.toml:5: listener[0].balanse: unknown key (did you mean \"balance\"?)"},
      {WithListenerKeys("conect_timeout = \"1s\""),
       "zrelayd.toml:5: listener[0].conect_timeout: unknown key (did you mean "
       "\"connect_timeout\"?)"},
      {WithListenerKeys("backends = 1"),
       "zrelayd.toml:5: listener[0].backends: unknown key (did you mean \"backend\"?)"},
      {WithListenerKeys("[listener.helth]\nfall = 2"),
       "zrelayd.toml:5: listener[0].helth: unknown key (did you mean \"health\"?)"},
      {WithListenerKeys("[listener.health]\nfall = 2\nrice = 2"),
       "zrelayd.toml:7: listener[0].health.rice: unknown key (did you mean \"rise\"?)"},
      {WithListenerKeys("[listener.health]\nintervall = \"1s\""),
       "zrelayd.toml:6: listener[0].health.intervall: unknown key (did you mean \"interval\"?)"},
      {std::string(kMinimal) + "wieght = 2\n",
       "zrelayd.toml:8: listener[0].backend[0].wieght: unknown key (did you mean \"weight\"?)"},
      {std::string(kMinimal) + "port = 80\n",
       "zrelayd.toml:8: listener[0].backend[0].port: unknown key"},
      // The first unknown key in the file is named, not the first in
      // alphabetical order.
      {"zzz = 1\naaa = 2\n" + std::string(kMinimal), "zrelayd.toml:1: zzz: unknown key"},
  });
}

TEST(Config, WrongTypes) {
  ExpectErrors({
      {"workers = \"2\"\n" + std::string(kMinimal),
       "zrelayd.toml:1: workers: expected an integer 1..1024, got \"2\""},
      {"workers = 0\n" + std::string(kMinimal),
       "zrelayd.toml:1: workers: expected an integer 1..1024, got 0"},
      {"workers = 2.0\n" + std::string(kMinimal),
       "zrelayd.toml:1: workers: expected an integer 1..1024, got 2.0"},
      {"pin = \"yes\"\n" + std::string(kMinimal),
       "zrelayd.toml:1: pin: expected true or false, got \"yes\""},
      {"mode = 1\n" + std::string(kMinimal),
       "zrelayd.toml:1: mode: expected \"splice\", \"copy\" or \"auto\", got 1"},
      {"mode = 'fa\"st\\'\n" + std::string(kMinimal),
       "zrelayd.toml:1: mode: expected \"splice\", \"copy\" or \"auto\", got \"fa\\\"st\\\\\""},
      {"mode = \"fast\"\n" + std::string(kMinimal),
       "zrelayd.toml:1: mode: expected \"splice\", \"copy\" or \"auto\", got \"fast\""},
      {"pipe_size = true\n" + std::string(kMinimal),
       "zrelayd.toml:1: pipe_size: expected a size above 0 such as \"64k\" or \"1M\" or a number "
       "of bytes, got true"},
      {"buffer_size = -1\n" + std::string(kMinimal),
       "zrelayd.toml:1: buffer_size: expected a size above 0 such as \"64k\" or \"1M\" or a "
       "number of bytes, got -1"},
      {"budget = \"0k\"\n" + std::string(kMinimal),
       "zrelayd.toml:1: budget: expected a size above 0 such as \"64k\" or \"1M\" or a number of "
       "bytes, got \"0k\""},
      {"budget = \"12q\"\n" + std::string(kMinimal),
       "zrelayd.toml:1: budget: bad size '12q': unknown suffix 'q' (use k, M, G or T; binary, k "
       "= 1024)"},
      {"pipe_pool = 2000000\n" + std::string(kMinimal),
       "zrelayd.toml:1: pipe_pool: expected an integer 0..1048576, got 2000000"},
      {"drain_grace = 10\n" + std::string(kMinimal),
       "zrelayd.toml:1: drain_grace: expected a duration string such as \"2s\" or \"500ms\", got "
       "10"},
      {"user = \"\"\n" + std::string(kMinimal),
       "zrelayd.toml:1: user: expected a non-empty string, got \"\""},
      {"user = [\"a\"]\n" + std::string(kMinimal),
       "zrelayd.toml:1: user: expected a non-empty string, got an array"},
      {"log_closes = 1979-05-27\n" + std::string(kMinimal),
       "zrelayd.toml:1: log_closes: expected true or false, got a date"},
      {"[listener]\nname = \"web\"\n",
       "zrelayd.toml:1: listener: expected an array of tables ([[listener]]), got a table"},
      {"listener = [1]\n", "zrelayd.toml:1: listener[0]: expected a table, got 1"},
      {"listener = []\n",
       "zrelayd.toml:1: listener: expected at least one [[listener]], got an empty array"},
      {"[[listener]]\nname = 1\n",
       "zrelayd.toml:2: listener[0].name: expected a non-empty string, got 1"},
      {"[[listener]]\nname = \"a\"\nlisten = 8080\n",
       "zrelayd.toml:3: listener[0].listen: expected an address or an array of them, got 8080"},
      {"[[listener]]\nname = \"a\"\nlisten = [\":1\", 2]\n",
       "zrelayd.toml:3: listener[0].listen[1]: expected an address, got 2"},
      {WithListenerKeys("balance = \"rr\""),
       "zrelayd.toml:5: listener[0].balance: unknown balancing policy 'rr' (choices: "
       "round-robin, least-conn, maglev)"},
      {WithListenerKeys("balance = 1"),
       "zrelayd.toml:5: listener[0].balance: expected \"round-robin\", \"least-conn\" or "
       "\"maglev\", got 1"},
      {WithListenerKeys("connect_timeout = 2"),
       "zrelayd.toml:5: listener[0].connect_timeout: expected a duration string such as \"2s\" "
       "or \"500ms\", got 2"},
      {WithListenerKeys("connect_timeout = \"2x\""),
       "zrelayd.toml:5: listener[0].connect_timeout: bad duration '2x': unknown unit 'x' (use s, "
       "ms, "
       "us, m or h; a bare number is seconds)"},
      {WithListenerKeys("connect_timeout = \"0\""),
       "zrelayd.toml:5: listener[0].connect_timeout: bad duration '0': must be greater than 0"},
      {WithListenerKeys("handshake_timeout = \"0s\""),
       "zrelayd.toml:5: listener[0].handshake_timeout: bad duration '0s': must be greater than 0"},
      {WithListenerKeys("resolve_interval = \"0s\""),
       "zrelayd.toml:5: listener[0].resolve_interval: bad duration '0s': must be greater than 0"},
      {WithListenerKeys("max_connections = -1"),
       "zrelayd.toml:5: listener[0].max_connections: expected an integer 0..100000000, got -1"},
      {WithListenerKeys("retries = \"2\""),
       "zrelayd.toml:5: listener[0].retries: expected an integer 0..16, got \"2\""},
      {WithListenerKeys("backlog = 0"),
       "zrelayd.toml:5: listener[0].backlog: expected an integer 1..65535, got 0"},
      {WithListenerKeys("tls_cert = 1\ntls_key = \"k\""),
       "zrelayd.toml:5: listener[0].tls_cert: expected a certificate file or an array of them, "
       "got 1"},
      {WithListenerKeys("tls_cert = [\"c\", \"\"]\ntls_key = [\"k\", \"k2\"]"),
       "zrelayd.toml:5: listener[0].tls_cert[1]: expected a certificate file, got \"\""},
      {WithListenerKeys("backend_tls = \"yes\""),
       "zrelayd.toml:5: listener[0].backend_tls: expected true or false, got \"yes\""},
      {"[[listener]]\nname = \"a\"\nlisten = \":1\"\nbackend = { address = \"10.0.0.2:1\" }\n",
       "zrelayd.toml:4: listener[0].backend: expected an array of tables "
       "([[listener.backend]]), got a table"},
      {"[[listener]]\nname = \"a\"\nlisten = \":1\"\nbackend = 1\n",
       "zrelayd.toml:4: listener[0].backend: expected an array of tables "
       "([[listener.backend]]), got 1"},
      {WithListenerKeys("health = 1"),
       "zrelayd.toml:5: listener[0].health: expected a table, got 1"},
      {WithListenerKeys("[listener.health]\nfall = \"3\""),
       "zrelayd.toml:6: listener[0].health.fall: expected an integer 1..100, got \"3\""},
      {std::string(kMinimal) + "weight = 2.5\n",
       "zrelayd.toml:8: listener[0].backend[0].weight: expected an integer 1..256, got 2.5"},
      {std::string(kMinimal) + "[[listener.backend]]\naddress = 10\n",
       "zrelayd.toml:9: listener[0].backend[1].address: expected a non-empty string, got 10"},
  });
}

TEST(Config, TheBriefsExampleMessage) {
  // Line 12 of a file with two backends.
  EXPECT_EQ(
      ErrorOf(R"(workers = 2

[[listener]]
name = "web"
listen = "127.0.0.1:8080"

[[listener.backend]]
address = "10.0.0.1:9000"

[[listener.backend]]
address = "10.0.0.2:9000"
weight = "two"
)"),
      "zrelayd.toml:12: listener[0].backend[1].weight: expected an integer 1..256, got \"two\"");
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "weight = 257\n"),
            "zrelayd.toml:8: listener[0].backend[0].weight: expected an integer 1..256, got 257");
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "weight = 0\n"),
            "zrelayd.toml:8: listener[0].backend[0].weight: expected an integer 1..256, got 0");
  EXPECT_EQ(Parse(std::string(kMinimal) + "weight = 256\n")->listeners[0].backends[0].weight, 256u);
}

TEST(Config, RequiredKeys) {
  ExpectErrors({
      {"", "zrelayd.toml: listener: missing; expected at least one [[listener]]"},
      {"workers = 2\n", "zrelayd.toml: listener: missing; expected at least one [[listener]]"},
      {"\n[[listener]]\nlisten = \":1\"\n[[listener.backend]]\naddress = \"10.0.0.1:1\"\n",
       "zrelayd.toml:2: listener[0].name: missing; expected a unique name such as \"web\""},
      {"[[listener]]\nname = \"\"\n",
       "zrelayd.toml:2: listener[0].name: expected a non-empty string, got \"\""},
      {"\n[[listener]]\nname = \"a\"\n[[listener.backend]]\naddress = \"10.0.0.1:1\"\n",
       "zrelayd.toml:2: listener[0].listen: missing; expected an address such as "
       "\"127.0.0.1:8080\" or an array of them"},
      {"[[listener]]\nname = \"a\"\nlisten = []\n",
       "zrelayd.toml:3: listener[0].listen: expected an address or a non-empty array of them, got "
       "an empty array"},
      {"\n\n[[listener]]\nname = \"a\"\nlisten = \":1\"\n",
       "zrelayd.toml:3: listener[0].backend: missing; expected at least one [[listener.backend]]"},
      {"[[listener]]\nname = \"a\"\nlisten = \":1\"\nbackend = []\n",
       "zrelayd.toml:4: listener[0].backend: expected at least one [[listener.backend]], got an "
       "empty array"},
      {std::string(kMinimal) + "[[listener.backend]]\nweight = 2\n",
       "zrelayd.toml:8: listener[0].backend[1].address: missing; expected host:port, "
       "IPv4:port, [IPv6]:port or unix:/path"},
  });
}

TEST(Config, ListenerNamesAndAddressesAreUnique) {
  ExpectErrors({
      {std::string(kMinimal) + "[[listener]]\nname = \"web\"\nlisten = \":81\"\n"
                               "[[listener.backend]]\naddress = \"10.0.0.1:9000\"\n",
       "zrelayd.toml:9: listener[1].name: \"web\" is already the name of listener[0]"},
      {std::string(kMinimal) +
           "[[listener]]\nname = \"api\"\nlisten = [\":81\", \"127.0.0.1:8080\"]\n"
           "[[listener.backend]]\naddress = \"10.0.0.1:9000\"\n",
       "zrelayd.toml:10: listener[1].listen[1]: 127.0.0.1:8080 is already listened on by "
       "listener[0].listen"},
      {WithListenerKeys("").replace(WithListenerKeys("").find("listen = "), 26,
                                    "listen = [\"[::1]:80\", \"[0::1]:80\"]"),
       "zrelayd.toml:4: listener[0].listen[1]: [::1]:80 is already listened on by "
       "listener[0].listen[0]"},
      {std::string(kMinimal) + "[[listener.backend]]\naddress = \"10.0.0.1:9000\"\n",
       "zrelayd.toml:9: listener[0].backend[1].address: \"10.0.0.1:9000\" is listed twice (also "
       "backend[0])"},
      {std::string(kMinimal) + "[[listener.backend]]\naddress = \"app:1\"\n"
                               "[[listener.backend]]\naddress = \"APP:1\"\n",
       "zrelayd.toml:11: listener[0].backend[2].address: \"APP:1\" is listed twice (also "
       "backend[1])"},
  });
  // Port 0 asks the kernel for a fresh port each time: not a duplicate.
  Result<FileConfig> config = Parse(WithListenerKeys("").replace(
      WithListenerKeys("").find("listen = "), 26, "listen = [\":0\", \"127.0.0.1:0\", \"*:0\"]"));
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->listeners[0].listen.size(), 3u);
  // The same backend in two listeners is fine.
  config = Parse(std::string(kMinimal) +
                 "[[listener]]\nname = \"api\"\nlisten = \":81\"\n"
                 "[[listener.backend]]\naddress = \"10.0.0.1:9000\"\n");
  ASSERT_TRUE(config.ok()) << config.error().message();
}

TEST(Config, TlsKeysGoTogether) {
  ExpectErrors({
      {WithListenerKeys("tls_cert = \"c.pem\""),
       "zrelayd.toml:2: listener[0].tls_key: missing; expected a key file for each tls_cert"},
      {WithListenerKeys("tls_key = \"k.pem\""),
       "zrelayd.toml:5: listener[0].tls_key: needs tls_cert"},
      {WithListenerKeys("tls_cert = [\"a.pem\", \"b.pem\"]\ntls_key = \"a.key\""),
       "zrelayd.toml:6: listener[0].tls_key: expected 2 key files, one per tls_cert, got 1"},
      {WithListenerKeys("tls_cert = \"a.pem\"\ntls_key = [\"a.key\", \"b.key\"]"),
       "zrelayd.toml:6: listener[0].tls_key: expected 1 key file, one per tls_cert, got 2"},
      {WithListenerKeys("backend_ca = \"ca.pem\""),
       "zrelayd.toml:5: listener[0].backend_ca: needs backend_tls = true"},
      {WithListenerKeys("backend_sni = \"app\""),
       "zrelayd.toml:5: listener[0].backend_sni: needs backend_tls = true"},
      {WithListenerKeys("backend_insecure = true"),
       "zrelayd.toml:5: listener[0].backend_insecure: needs backend_tls = true"},
      {WithListenerKeys("backend_tls = false\nbackend_ca = \"ca.pem\""),
       "zrelayd.toml:6: listener[0].backend_ca: needs backend_tls = true"},
      {WithListenerKeys("tls_min = \"TLS1.3\""),
       "zrelayd.toml:5: listener[0].tls_min: needs tls_cert or backend_tls = true"},
      {WithListenerKeys("alpn = [\"h2\"]"),
       "zrelayd.toml:5: listener[0].alpn: needs tls_cert or backend_tls = true"},
      {WithListenerKeys("backend_tls = true\ntls_min = \"TLS1.9\""),
       "zrelayd.toml:6: listener[0].tls_min: unknown TLS version 'TLS1.9' (use TLS1.2 or "
       "TLS1.3)"},
      {WithListenerKeys("backend_tls = true\nalpn = [\"h2\", \"" + std::string(256, 'x') + "\"]"),
       "zrelayd.toml:6: listener[0].alpn[1]: expected a protocol name of at most 255 bytes, got "
       "256 bytes"},
      {WithListenerKeys("backend_tls = true\nalpn = []"),
       "zrelayd.toml:6: listener[0].alpn: expected a protocol name or a non-empty array of them, "
       "got an empty array"},
      {WithListenerKeys("backend_tls = true\nbackend_sni = \"not a name\""),
       "zrelayd.toml:6: listener[0].backend_sni: expected a host name, got \"not a name\""},
  });
}

TEST(Config, HealthChecks) {
  ExpectErrors({
      {WithListenerKeys("[listener.health]\nfall = 0"),
       "zrelayd.toml:6: listener[0].health.fall: expected an integer 1..100, got 0"},
      {WithListenerKeys("[listener.health]\nrise = 0"),
       "zrelayd.toml:6: listener[0].health.rise: expected an integer 1..100, got 0"},
      {WithListenerKeys("[listener.health]\ninterval = \"1s\"\ntimeout = \"1s\""),
       "zrelayd.toml:7: listener[0].health.timeout: expected less than interval \"1s\", got "
       "\"1s\""},
      {WithListenerKeys("[listener.health]\ninterval = \"500ms\""),
       "zrelayd.toml:5: listener[0].health.timeout: expected less than interval \"500ms\", got "
       "\"1s\" (the default)"},
      {WithListenerKeys("[listener.health]\ntimeout = \"3s\""),
       "zrelayd.toml:6: listener[0].health.timeout: expected less than interval \"2s\" (the "
       "default), got \"3s\""},
      {WithListenerKeys("[listener.health]\ninterval = \"0s\""),
       "zrelayd.toml:6: listener[0].health.interval: bad duration '0s': must be greater than 0"},
  });
  Result<FileConfig> config =
      Parse(WithListenerKeys("[listener.health]\ninterval = \"10s\"\ntimeout = \"9.5s\"\n"
                             "fall = 1\nrise = 100"));
  ASSERT_TRUE(config.ok()) << config.error().message();
  const HealthConfig& health = *config->listeners[0].health;
  EXPECT_EQ(health.interval, seconds(10));
  EXPECT_EQ(health.timeout, milliseconds(9500));
  EXPECT_EQ(health.fall, 1);
  EXPECT_EQ(health.rise, 100);
}

// A listener with the given listen value and one backend with the given
// address (TOML values, quoted by the caller).
std::string ListenAndBackend(std::string_view listen, std::string_view backend) {
  return "[[listener]]\nname = \"a\"\nlisten = " + std::string(listen) +
         "\n[[listener.backend]]\naddress = " + std::string(backend) + "\n";
}

TEST(Config, ListenAddresses) {
  Result<FileConfig> config = Parse(ListenAndBackend(
      R"(["127.0.0.1:80", "[::1]:443", ":8080", "*:8081", "[::]:0", "unix:/run/z.sock", "unix:@z"])",
      R"("10.0.0.1:1")"));
  ASSERT_TRUE(config.ok()) << config.error().message();
  const std::vector<Address>& listen = config->listeners[0].listen;
  ASSERT_EQ(listen.size(), 7u);
  EXPECT_EQ(listen[0].ToString(), "127.0.0.1:80");
  EXPECT_EQ(listen[1].family(), AF_INET6);
  EXPECT_EQ(listen[1].ToString(), "[::1]:443");
  EXPECT_EQ(listen[2].ToString(), "0.0.0.0:8080");
  EXPECT_EQ(listen[3].ToString(), "0.0.0.0:8081");
  EXPECT_EQ(listen[4].ToString(), "[::]:0");
  EXPECT_TRUE(listen[5].is_unix());
  EXPECT_EQ(listen[5].ToString(), "unix:/run/z.sock");
  EXPECT_EQ(listen[6].ToString(), "unix:@z");

  ExpectErrors({
      {ListenAndBackend(R"("localhost:80")", R"("10.0.0.1:1")"),
       "zrelayd.toml:3: listener[0].listen: bad address 'localhost:80': listen takes an IP "
       "address, ':port' or unix:/path, not a host name (it is not resolved)"},
      {ListenAndBackend(R"([":80", "127.0.0.1:99999"])", R"("10.0.0.1:1")"),
       "zrelayd.toml:3: listener[0].listen[1]: bad address '127.0.0.1:99999': port 99999 is out "
       "of range (0..65535)"},
      {ListenAndBackend(R"("::1:80")", R"("10.0.0.1:1")"),
       "zrelayd.toml:3: listener[0].listen: bad address '::1:80': an IPv6 address must be "
       "written in brackets, as in '[::1]:80'"},
      {ListenAndBackend(R"("127.0.0.1")", R"("10.0.0.1:1")"),
       "zrelayd.toml:3: listener[0].listen: bad address '127.0.0.1': missing ':port'"},
      {ListenAndBackend(R"("unix:")", R"("10.0.0.1:1")"),
       "zrelayd.toml:3: listener[0].listen: bad address 'unix:': unix socket path is empty"},
  });
}

// A host name of `size` characters: labels of 9 letters and a dot.
std::string LongName(size_t size) {
  std::string name;
  while (name.size() < size) name += (name.size() % 10 == 9) ? '.' : 'a';
  if (name.back() == '.') name.back() = 'a';
  return name;
}

TEST(Config, BackendAddresses) {
  Result<FileConfig> config = Parse(R"(
[[listener]]
name = "a"
listen = ":0"
[[listener.backend]]
address = "10.1.2.3:80"
[[listener.backend]]
address = "[2001:db8::1]:443"
[[listener.backend]]
address = "unix:/run/app.sock"
[[listener.backend]]
address = "localhost:9000"
[[listener.backend]]
address = "app-1.invalid:65535"
[[listener.backend]]
address = "svc_name.example.com.:1"
)");
  ASSERT_TRUE(config.ok()) << config.error().message();
  const std::vector<BackendConfig>& backends = config->listeners[0].backends;
  ASSERT_EQ(backends.size(), 6u);
  ASSERT_TRUE(backends[0].literal.has_value());
  EXPECT_EQ(backends[0].literal->family(), AF_INET);
  EXPECT_EQ(backends[0].literal->ToString(), "10.1.2.3:80");
  EXPECT_EQ(backends[0].port, 80);
  ASSERT_TRUE(backends[1].literal.has_value());
  EXPECT_EQ(backends[1].literal->family(), AF_INET6);
  EXPECT_EQ(backends[1].literal->ToString(), "[2001:db8::1]:443");
  EXPECT_EQ(backends[1].port, 443);
  ASSERT_TRUE(backends[2].literal.has_value());
  EXPECT_TRUE(backends[2].literal->is_unix());
  EXPECT_EQ(backends[2].literal->ToString(), "unix:/run/app.sock");
  EXPECT_EQ(backends[2].port, 0);
  EXPECT_EQ(backends[2].host, "");
  // Host names are kept as text, never resolved here: "localhost" would
  // resolve, ".invalid" never does (RFC 6761), and both parse the same way.
  for (size_t i : {3, 4, 5}) {
    EXPECT_FALSE(backends[i].literal.has_value()) << backends[i].address;
  }
  EXPECT_EQ(backends[3].address, "localhost:9000");
  EXPECT_EQ(backends[3].host, "localhost");
  EXPECT_EQ(backends[3].port, 9000);
  EXPECT_EQ(backends[4].host, "app-1.invalid");
  EXPECT_EQ(backends[4].port, 65535);
  EXPECT_EQ(backends[5].host, "svc_name.example.com.");
  EXPECT_EQ(backends[5].port, 1);
  // The longest label (63) and name (253) there can be.
  config = Parse(ListenAndBackend(R"(":1")", "\"" + std::string(63, 'a') + ".b:1\"") +
                 "[[listener.backend]]\naddress = \"" + LongName(253) + ":2\"\n");
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->listeners[0].backends[1].host.size(), 253u);

  ExpectErrors({
      {ListenAndBackend(R"(":1")", R"("10.0.0.1:0")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address '10.0.0.1:0': port 0 is not "
       "a backend port (1..65535)"},
      {ListenAndBackend(R"(":1")", R"("app:0")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address 'app:0': port 0 is out of "
       "range (1..65535)"},
      {ListenAndBackend(R"(":1")", R"("app:65536")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address 'app:65536': port 65536 is "
       "out of range (1..65535)"},
      {ListenAndBackend(R"(":1")", R"("app:http")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address 'app:http': port 'http' is "
       "not a number 1..65535"},
      {ListenAndBackend(R"(":1")", R"("app:")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address 'app:': missing port after "
       "':'"},
      {ListenAndBackend(R"(":1")", R"("app")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address 'app': missing ':port'"},
      {ListenAndBackend(R"(":1")", R"(":80")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address ':80': a backend needs a host "
       "before ':port'"},
      {ListenAndBackend(R"(":1")", R"("*:80")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address '*:80': a backend needs a "
       "host before ':port'"},
      {ListenAndBackend(R"(":1")", R"("app..internal:80")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address 'app..internal:80': "
       "'app..internal' is not a valid host name"},
      {ListenAndBackend(R"(":1")", R"("-app:80")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address '-app:80': '-app' is not a "
       "valid host name"},
      {ListenAndBackend(R"(":1")", R"("app/x:80")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address 'app/x:80': 'app/x' is not a "
       "valid host name"},
      {ListenAndBackend(R"(":1")", "\"" + std::string(64, 'a') + ".example:80\""),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address '" + std::string(64, 'a') +
           ".example:80': '" + std::string(64, 'a') + ".example' is not a valid host name"},
      {ListenAndBackend(R"(":1")", "\"" + LongName(254) + ":80\""),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address '" + LongName(254) + ":80': '" +
           LongName(254) + "' is not a valid host name"},
      {ListenAndBackend(R"(":1")", R"("10.0.0.300:80")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address '10.0.0.300:80': "
       "'10.0.0.300' is not a valid IPv4 address"},
      {ListenAndBackend(R"(":1")", R"("fd00::1:80")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address 'fd00::1:80': an IPv6 "
       "address must be written in brackets, as in '[::1]:80'"},
      {ListenAndBackend(R"(":1")", R"("[fd00::zz]:80")"),
       "zrelayd.toml:5: listener[0].backend[0].address: bad address '[fd00::zz]:80': 'fd00::zz' "
       "is not a valid IPv6 address"},
  });
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
