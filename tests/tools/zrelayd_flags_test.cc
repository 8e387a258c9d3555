#include "tools/zrelayd_flags.h"

#include <gtest/gtest.h>

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
                  "--buffer-size", "32k", "--budget", "1M", "--log-closes"});
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
}

TEST(ZrelaydFlags, BadInputsNameTheFlagAndValue) {
  ExpectUsageError({"--backend", "127.0.0.1:1"}, "--listen is required");
  ExpectUsageError({"--listen", "127.0.0.1:1"}, "--backend is required");
  ExpectUsageError({"--listen", "127.0.0.1:99999", "--backend", "127.0.0.1:1"}, "99999");
  ExpectUsageError({"--listen", "nope", "--backend", "127.0.0.1:1"}, "--listen");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--mode", "fast"}, "'fast'");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--workers", "two"}, "--workers");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--workers", "0"}, "out of range");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--pipe-size", "1X"}, "unknown suffix");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--idle-timeout", "soon"}, "--idle-timeout");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--idle-timeout", "5q"}, "'5q'");
  ExpectUsageError({"--listen", ":1", "--backend", ":2", "--bogus"}, "unknown flag '--bogus'");
  ExpectUsageError({"--listen"}, "--listen: missing value");
}

TEST(ZrelaydFlags, HelpNeedsNothingElse) {
  auto r = Parse({"--help"});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->help);
}

}  // namespace
}  // namespace zrelay
