// The access log's line: every field of a plain and a TLS pair, the ones
// left out when unknown, and values a client chose (SNI) that must neither
// split the line nor forge a key.
#include "tools/log/access_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace zrelay {
namespace {

Address At(const char* text) {
  auto address = Address::Parse(text);
  EXPECT_TRUE(address.ok()) << text;
  return address.ok() ? address.value() : Address();
}

PairStats Plain() {
  PairStats stats;
  stats.client = At("127.0.0.1:51234");
  stats.backend = At("10.0.0.5:9000");
  stats.a_to_b = 123;
  stats.b_to_a = 456;
  stats.age = milliseconds(12) + microseconds(900);
  stats.cause = CloseCause::kDone;
  return stats;
}

TEST(AccessLine, PlainPair) {
  EXPECT_EQ(AccessLine("web", Plain()),
            "listener=web client=127.0.0.1:51234 backend=10.0.0.5:9000 bytes_up=123 "
            "bytes_down=456 duration_ms=12 cause=done");
}

TEST(AccessLine, TlsPairThatFailed) {
  PairStats stats = Plain();
  stats.client = At("[::1]:40000");
  stats.tls_version = "TLSv1.3";
  stats.sni = "a.example";
  stats.cause = CloseCause::kConnectFailed;
  stats.detail = "connect 10.0.0.5:9000: Connection refused";
  EXPECT_EQ(AccessLine("api", stats),
            "listener=api client=[::1]:40000 backend=10.0.0.5:9000 bytes_up=123 bytes_down=456 "
            "duration_ms=12 cause=connect-failed tls=TLSv1.3 sni=a.example "
            "detail=\"connect 10.0.0.5:9000: Connection refused\"");
}

// The command line's listener has no name; a pair that never got as far as
// a backend has none to name.
TEST(AccessLine, UnknownFieldsAreLeftOutOrDashed) {
  PairStats stats;
  stats.cause = CloseCause::kTimeout;
  EXPECT_EQ(AccessLine("", stats),
            "client=- backend=- bytes_up=0 bytes_down=0 duration_ms=0 cause=timeout");
  stats.backend = At("unix:/run/app.sock");
  EXPECT_EQ(AccessLine("", stats),
            "client=- backend=unix:/run/app.sock bytes_up=0 bytes_down=0 duration_ms=0 "
            "cause=timeout");
}

TEST(AccessLine, ValuesAreQuotedAndEscapedWhereNeeded) {
  PairStats stats = Plain();
  stats.tls_version = "TLSv1.2";
  stats.sni = "evil\n2026-12-01T00:00:00.000Z listener=x cause=\"done\"\\\x01\xff";
  stats.cause = CloseCause::kError;
  stats.detail = "TLS: \"bad\"\tthing";
  const std::string line = AccessLine("my listener", stats);
  EXPECT_EQ(line,
            "listener=\"my listener\" client=127.0.0.1:51234 backend=10.0.0.5:9000 bytes_up=123 "
            "bytes_down=456 duration_ms=12 cause=error tls=TLSv1.2 "
            "sni=\"evil\\n2026-12-01T00:00:00.000Z listener=x cause=\\\"done\\\"\\\\\\x01\\xff\" "
            "detail=\"TLS: \\\"bad\\\"\\tthing\"");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

// AccessLogger: one whole line per closed pair, timestamped in a file.
TEST(AccessLogger, WritesOneLinePerPair) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/access_logger.log";
  ::unlink(path.c_str());
  auto sink = LogSink::OpenFile(path, "access log");
  ASSERT_TRUE(sink.ok()) << sink.error().message();
  OnClose on_close = AccessLogger(std::move(sink.value()), "web");
  on_close(Plain());
  on_close(Plain());
  std::ifstream in(path);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    ASSERT_GT(line.size(), 25u) << line;
    EXPECT_EQ(line.substr(25), AccessLine("web", Plain()));
    EXPECT_EQ(line[23], 'Z') << line;
  }
  EXPECT_EQ(lines, 2);
}

}  // namespace
}  // namespace zrelay
