// Addresses in zrelayd's file: listen values (IP addresses, ':port', unix
// paths, never host names) and backend addresses (literals kept parsed,
// host names kept as text up to the longest name there can be), and the
// error for each malformed one.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <string>
#include <string_view>
#include <vector>

#include "tests/config/config_test_util.h"
#include "tests/config/parse_util.h"
#include "tools/config/config.h"

namespace zrelay {
namespace {

using testing::ExpectErrors;
using testing::Parse;

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

}  // namespace
}  // namespace zrelay
