// The operations keys of zrelayd's file: io, [admin], [log] and upgrade_socket.
#include <gtest/gtest.h>

#include <string>

#include "tests/config/parse_util.h"
#include "tools/config/config.h"

namespace zrelay {
namespace {

using testing::ErrorOf;
using testing::Parse;

constexpr char kListener[] = R"(
[[listener]]
name = "web"
listen = "127.0.0.1:8080"

[[listener.backend]]
address = "10.0.0.1:9000"
)";

TEST(OperationsConfig, AbsentKeysMeanNoAdminStderrNoAccessLogNoUpgrades) {
  Result<FileConfig> config = Parse(kListener);
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_FALSE(config->admin_listen.has_value());
  EXPECT_EQ(config->log_file, "");
  EXPECT_EQ(config->access_log, "");
  EXPECT_EQ(config->upgrade_socket, "");
}

TEST(OperationsConfig, EveryKey) {
  Result<FileConfig> config = Parse(R"(
upgrade_socket = "/run/zrelayd/upgrade.sock"

[admin]
listen = "127.0.0.1:9901"

[log]
file = "/var/log/zrelayd.log"
access_log = "stderr"
)" + std::string(kListener));
  ASSERT_TRUE(config.ok()) << config.error().message();
  ASSERT_TRUE(config->admin_listen.has_value());
  EXPECT_EQ(config->admin_listen->ToString(), "127.0.0.1:9901");
  EXPECT_EQ(config->log_file, "/var/log/zrelayd.log");
  EXPECT_EQ(config->access_log, "stderr");
  EXPECT_EQ(config->upgrade_socket, "/run/zrelayd/upgrade.sock");

  Result<FileConfig> unix_admin =
      Parse("[admin]\nlisten = \"unix:/run/zrelayd/admin.sock\"\n" + std::string(kListener));
  ASSERT_TRUE(unix_admin.ok()) << unix_admin.error().message();
  EXPECT_TRUE(unix_admin->admin_listen->is_unix());
}

// log_closes is the older way to say access_log = "stderr"; a destination
// [log] names wins over it.
TEST(OperationsConfig, LogClosesMeansAnAccessLogOnStderr) {
  EXPECT_EQ(Parse("log_closes = true\n" + std::string(kListener))->access_log, "stderr");
  EXPECT_EQ(Parse("log_closes = false\n" + std::string(kListener))->access_log, "");
  EXPECT_EQ(
      Parse("log_closes = true\n[log]\naccess_log = \"/var/log/a.log\"\n" + std::string(kListener))
          ->access_log,
      "/var/log/a.log");
}

TEST(OperationsConfig, ErrorsNameTheKey) {
  EXPECT_EQ(ErrorOf("upgrade_socket = \"run/up.sock\"\n" + std::string(kListener)),
            "zrelayd.toml:1: upgrade_socket: expected an absolute path, got \"run/up.sock\"");
  EXPECT_NE(ErrorOf("[admin]\nlisten = \"localhost:9901\"\n" + std::string(kListener))
                .find("zrelayd.toml:2: admin.listen: "),
            std::string::npos);
  EXPECT_NE(ErrorOf("[admin]\n" + std::string(kListener)).find("admin.listen: missing"),
            std::string::npos);
  EXPECT_EQ(ErrorOf("[admin]\nlisten = \"127.0.0.1:9901\"\nport = 1\n" + std::string(kListener)),
            "zrelayd.toml:3: admin.port: unknown key");
  EXPECT_EQ(ErrorOf("[log]\nacces_log = \"stderr\"\n" + std::string(kListener)),
            "zrelayd.toml:2: log.acces_log: unknown key (did you mean \"access_log\"?)");
  EXPECT_EQ(ErrorOf("[log]\nfile = 3\n" + std::string(kListener)),
            "zrelayd.toml:2: log.file: expected a non-empty string, got 3");
}

TEST(OperationsConfig, IoBackend) {
  EXPECT_EQ(Parse(kListener)->io, IoBackend::kEpoll);
  EXPECT_EQ(Parse("io = \"uring\"\n" + std::string(kListener))->io, IoBackend::kUring);
  EXPECT_EQ(Parse("io = \"auto\"\n" + std::string(kListener))->io, IoBackend::kAuto);
  EXPECT_EQ(ErrorOf("io = \"kqueue\"\n" + std::string(kListener)),
            "zrelayd.toml:1: io: expected \"epoll\", \"uring\" or \"auto\", got \"kqueue\"");
}

TEST(OperationsConfig, AdminAddressIsNotAListenersToo) {
  std::string message = ErrorOf("[admin]\nlisten = \"127.0.0.1:8080\"\n" + std::string(kListener));
  EXPECT_NE(
      message.find("listener[0].listen: 127.0.0.1:8080 is already listened on by admin.listen"),
      std::string::npos)
      << message;
}

}  // namespace
}  // namespace zrelay
