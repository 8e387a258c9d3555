// zrelayd's file refused, each with its one-line message: TOML syntax
// errors with line and column, unknown keys (with a suggestion), wrong
// types, missing keys, duplicate names and addresses, TLS keys that go
// together, and health check values.
#include <gtest/gtest.h>

#include <string>

#include "tests/config/config_test_util.h"
#include "tests/config/parse_util.h"
#include "tools/config/config.h"

namespace zrelay {
namespace {

using testing::ErrorOf;
using testing::ExpectErrors;
using testing::kMinimal;
using testing::Parse;
using testing::WithListenerKeys;

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

}  // namespace
}  // namespace zrelay
