// zrelay-load's value parsers and command line: good inputs give the right
// values; bad ones give an error that names the flag and says what is wrong.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "tools/cli/values.h"
#include "tools/load/config.h"

namespace zrelay::load {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Result<Config> Parse(std::initializer_list<const char*> args) {
  std::vector<const char*> argv = {"zrelay-load"};
  argv.insert(argv.end(), args.begin(), args.end());
  return ParseArgs(static_cast<int>(argv.size()), argv.data());
}

std::string ErrorOf(std::initializer_list<const char*> args) {
  auto r = Parse(args);
  if (r.ok()) return "<parsed fine>";
  return r.error().message();
}

TEST(ParseSizeTest, Good) {
  EXPECT_EQ(ParseSize("0").value(), 0u);
  EXPECT_EQ(ParseSize("4096").value(), 4096u);
  EXPECT_EQ(ParseSize("64k").value(), 64u << 10);
  EXPECT_EQ(ParseSize("64K").value(), 64u << 10);
  EXPECT_EQ(ParseSize("64KiB").value(), 64u << 10);
  EXPECT_EQ(ParseSize("64kb").value(), 64u << 10);
  EXPECT_EQ(ParseSize("1M").value(), 1u << 20);
  EXPECT_EQ(ParseSize("1G").value(), 1ull << 30);
  EXPECT_EQ(ParseSize("1.5G").value(), 3ull << 29);
  EXPECT_EQ(ParseSize("2T").value(), 2ull << 40);
  EXPECT_EQ(ParseSize("100b").value(), 100u);
}

TEST(ParseSizeTest, Bad) {
  EXPECT_THAT(ParseSize("").error().message(), HasSubstr("empty"));
  EXPECT_THAT(ParseSize("k").error().message(), HasSubstr("expected a number"));
  EXPECT_THAT(ParseSize("-5").error().message(), HasSubstr("negative"));
  EXPECT_THAT(ParseSize("64q").error().message(), HasSubstr("unknown suffix 'q'"));
  EXPECT_THAT(ParseSize("1 M").error().message(), HasSubstr("unknown suffix ' m'"));
  EXPECT_THAT(ParseSize("1.5").error().message(), HasSubstr("not a whole number"));
  EXPECT_THAT(ParseSize("99999999T").error().message(), HasSubstr("too large"));
  EXPECT_THAT(ParseSize("1.2.3k").error().message(), HasSubstr("unknown suffix"));
}

TEST(ParseDurationTest, Good) {
  EXPECT_EQ(ParseDuration("10").value(), seconds(10));
  EXPECT_EQ(ParseDuration("2.5s").value(), milliseconds(2500));
  EXPECT_EQ(ParseDuration("500ms").value(), milliseconds(500));
  EXPECT_EQ(ParseDuration("250us").value(), microseconds(250));
  EXPECT_EQ(ParseDuration("2m").value(), seconds(120));
  EXPECT_EQ(ParseDuration("1h").value(), seconds(3600));
  EXPECT_EQ(ParseDuration("0", /*allow_zero=*/true).value(), Duration::zero());
}

TEST(ParseDurationTest, Bad) {
  EXPECT_THAT(ParseDuration("0").error().message(), HasSubstr("greater than 0"));
  EXPECT_THAT(ParseDuration("5x").error().message(), HasSubstr("unknown unit 'x'"));
  EXPECT_THAT(ParseDuration("s").error().message(), HasSubstr("expected a number"));
  EXPECT_THAT(ParseDuration("-1").error().message(), HasSubstr("negative"));
}

TEST(ParseCountTest, GoodAndBad) {
  EXPECT_EQ(ParseCount("1000", 1, 10000).value(), 1000u);
  EXPECT_EQ(ParseCount("10k", 1, 100000).value(), 10000u);
  EXPECT_EQ(ParseCount("1.5k", 1, 100000).value(), 1500u);
  EXPECT_THAT(ParseCount("0", 1, 10).error().message(), HasSubstr("between 1 and 10"));
  EXPECT_THAT(ParseCount("11", 1, 10).error().message(), HasSubstr("between 1 and 10"));
  EXPECT_THAT(ParseCount("2.5", 1, 10).error().message(), HasSubstr("whole number"));
  EXPECT_THAT(ParseCount("5G", 1, 10).error().message(), HasSubstr("unknown suffix"));
}

TEST(ParseArgsTest, BulkDefaultsAndValues) {
  auto c = Parse({"bulk", "--target", "127.0.0.1:9000"});
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->mode, Mode::kBulk);
  EXPECT_EQ(c->streams, 1u);
  EXPECT_EQ(c->duration, seconds(10));
  EXPECT_EQ(c->chunk, 64u << 10);
  EXPECT_EQ(c->direction, Direction::kUp);
  EXPECT_FALSE(c->verify);
  EXPECT_GT(c->workers, 0);
  EXPECT_EQ(c->cap, seconds(25));  // duration + 15 s

  c = Parse({"bulk", "--target=[::1]:9000", "--streams", "8", "--bytes", "1G", "--chunk=256k",
             "--verify", "--direction", "both", "--workers", "2", "--json"});
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->target.family(), AF_INET6);
  EXPECT_EQ(c->streams, 8u);
  EXPECT_EQ(c->bytes.value(), 1ull << 30);
  EXPECT_EQ(c->chunk, 256u << 10);
  EXPECT_TRUE(c->verify);
  EXPECT_EQ(c->direction, Direction::kBoth);
  EXPECT_EQ(c->workers, 2);
  EXPECT_TRUE(c->json);
  EXPECT_TRUE(c->counted());
  EXPECT_EQ(c->cap, kDefaultCountedCap);
}

TEST(ParseArgsTest, OtherModes) {
  auto rr = Parse({"rr", "--target", "localhost:80", "--conns", "50", "--req", "1k", "--resp", "4k",
                   "--requests", "10k"});
  ASSERT_TRUE(rr.ok()) << rr.error().message();
  EXPECT_EQ(rr->conns, 50u);
  EXPECT_EQ(rr->req, 1024u);
  EXPECT_EQ(rr->resp, 4096u);
  EXPECT_EQ(rr->requests.value(), 10000u);
  EXPECT_EQ(rr->target_host, "localhost");  // TLS: the default SNI and name checked
  EXPECT_EQ(Parse({"rr", "--target", "[::1]:80"})->target_host, "::1");
  EXPECT_EQ(Parse({"rr", "--target", ":80"})->target_host, "");

  auto idle = Parse({"idle", "--target", "127.0.0.1:1", "--pairs", "9000", "--hold", "30s",
                     "--relay-pid", "123"});
  ASSERT_TRUE(idle.ok()) << idle.error().message();
  EXPECT_EQ(idle->pairs, 9000u);
  EXPECT_EQ(idle->hold, seconds(30));
  EXPECT_EQ(idle->relay_pid, 123);
  EXPECT_EQ(idle->req, 1u);  // idle's default exchange is 1 byte each way
  EXPECT_EQ(idle->resp, 1u);

  auto backend =
      Parse({"backend", "--listen", ":0", "--mode", "fixed", "--req", "100", "--resp", "1M"});
  ASSERT_TRUE(backend.ok()) << backend.error().message();
  EXPECT_EQ(backend->backend_mode, BackendMode::kFixed);
  EXPECT_EQ(backend->duration, kDefaultBackendDuration);

  auto connect = Parse(
      {"connect", "--target", "unix:/tmp/x.sock", "--count", "500", "--req", "0", "--resp", "0"});
  ASSERT_TRUE(connect.ok()) << connect.error().message();
  EXPECT_EQ(connect->count.value(), 500u);
  EXPECT_TRUE(connect->target.is_unix());

  EXPECT_TRUE(Parse({"--help"})->help);
  EXPECT_TRUE(Parse({"rr", "--target", "bad", "--help"})->help);
}

TEST(ParseArgsTest, ErrorsNameTheFlag) {
  EXPECT_THAT(ErrorOf({}), HasSubstr("missing mode"));
  EXPECT_THAT(ErrorOf({"blast"}), HasSubstr("unknown mode 'blast'"));
  EXPECT_THAT(ErrorOf({"bulk"}), HasSubstr("--target ADDR is required"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "1.2.3.4"}), HasSubstr("--target: bad address"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "127.0.0.1:99999"}), HasSubstr("--target"));
  EXPECT_THAT(ErrorOf({"bulk", "--target"}), HasSubstr("--target: 1 required ADDR missing"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "127.0.0.1:1", "--chunk", "64q"}),
              HasSubstr("--chunk: bad size '64q'"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "127.0.0.1:1", "--chunk", "1G"}),
              HasSubstr("--chunk: '1G' is out of range"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "127.0.0.1:1", "--streams", "0"}),
              HasSubstr("--streams: bad number '0'"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "127.0.0.1:1", "--direction", "sideways"}),
              HasSubstr("--direction: 'sideways'"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "127.0.0.1:1", "--bytes", "1M", "--duration", "5"}),
              HasSubstr("--duration and --bytes exclude each other"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "127.0.0.1:1", "--bytes", "10", "--streams", "2"}),
              HasSubstr("--bytes: at least 64 bytes per stream"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "127.0.0.1:1", "--verify=maybe"}),
              HasSubstr("--verify: 'maybe' is not a boolean"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "127.0.0.1:1", "--json="}),
              HasSubstr("--json: '' is not a boolean"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "127.0.0.1:1", "--frobnicate"}),
              HasSubstr("unknown flag '--frobnicate'"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "127.0.0.1:1", "streams"}),
              HasSubstr("unexpected argument 'streams'"));
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--streams", "2"}),
              HasSubstr("--streams: not a flag of 'rr' mode"));
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--conns", "5", "--conns", "6"}),
              HasSubstr("--conns: given twice"));
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--req", "0"}),
              HasSubstr("--req: rr needs at least 1 byte"));
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--conns", "20001"}),
              HasSubstr("--conns: bad number '20001': must be between 1 and 19000"));
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--duration", "0"}),
              HasSubstr("--duration: bad duration '0': must be greater than 0"));
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--duration", "25h"}),
              HasSubstr("--duration: at most 24 h"));
  EXPECT_THAT(ErrorOf({"idle", "--target", "127.0.0.1:1"}), HasSubstr("--pairs N is required"));
  EXPECT_THAT(ErrorOf({"idle", "--target", "127.0.0.1:1", "--pairs", "5", "--relay-pid", "x"}),
              HasSubstr("--relay-pid: bad number 'x'"));
  EXPECT_THAT(ErrorOf({"backend"}), HasSubstr("--listen ADDR is required"));
  EXPECT_THAT(ErrorOf({"backend", "--listen", ":0", "--mode", "blackhole"}),
              HasSubstr("--mode: 'blackhole' is not one of"));
  EXPECT_THAT(ErrorOf({"backend", "--listen", ":0", "--mode", "fixed", "--req", "0"}),
              HasSubstr("--req: mode fixed needs"));
  EXPECT_THAT(ErrorOf({"backend", "--listen", ":0", "--resp", "10"}),
              HasSubstr("--resp: only used by --mode fixed"));
  EXPECT_THAT(ErrorOf({"backend", "--listen", ":0", "--io-timeout", "1"}),
              HasSubstr("--io-timeout: not a flag of 'backend' mode"));
  EXPECT_THAT(ErrorOf({"backend", "--listen", ":0", "--tls"}),
              HasSubstr("--tls: not a flag of 'backend' mode"));
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--sni", "x"}),
              HasSubstr("--sni: needs --tls"));
  EXPECT_THAT(
      ErrorOf({"rr", "--target", "127.0.0.1:1", "--tls", "--tls-ca", "a.pem", "--tls-insecure"}),
      HasSubstr("--tls-ca and --tls-insecure exclude each other"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "127.0.0.1:1", "--workers", "65"}),
              HasSubstr("--workers"));
}

TEST(ParseArgsTest, UdpClientAndBackend) {
  auto udp = Parse({"udp", "--target", "127.0.0.1:9000"});
  ASSERT_TRUE(udp.ok()) << udp.error().message();
  EXPECT_EQ(udp->mode, Mode::kUdp);
  EXPECT_EQ(udp->flows, 10u);
  EXPECT_EQ(udp->size, 64u);
  EXPECT_EQ(udp->reply_timeout, kDefaultReplyTimeout);
  EXPECT_EQ(udp->duration, seconds(10));
  EXPECT_EQ(udp->cap, seconds(25));

  udp = Parse({"udp", "--target", "[::1]:9000", "--flows", "50", "--size", "65507", "--requests",
               "1k", "--reply-timeout", "250ms", "--workers", "1", "--json"});
  ASSERT_TRUE(udp.ok()) << udp.error().message();
  EXPECT_EQ(udp->target.family(), AF_INET6);
  EXPECT_EQ(udp->flows, 50u);
  EXPECT_EQ(udp->size, 65507u);
  EXPECT_EQ(udp->requests.value(), 1000u);
  EXPECT_EQ(udp->reply_timeout, milliseconds(250));
  EXPECT_EQ(udp->cap, kDefaultCountedCap);
  EXPECT_EQ(Parse({"udp", "--target", ":1", "--size", "1"})->size, 1u);

  auto backend = Parse({"backend", "--udp", "--listen", "127.0.0.1:0"});
  ASSERT_TRUE(backend.ok()) << backend.error().message();
  EXPECT_TRUE(backend->udp);
  EXPECT_EQ(backend->backend_mode, BackendMode::kEcho);
  EXPECT_TRUE(Parse({"backend", "--udp", "--listen", ":0", "--mode", "echo"})->udp);
  EXPECT_FALSE(Parse({"backend", "--listen", ":0"})->udp);

  EXPECT_THAT(ErrorOf({"udp"}), HasSubstr("udp: --target ADDR is required"));
  EXPECT_THAT(ErrorOf({"udp", "--target", "unix:/tmp/x"}),
              HasSubstr("--target: udp needs an IP address"));
  EXPECT_THAT(ErrorOf({"udp", "--target", ":1", "--size", "0"}),
              HasSubstr("--size: '0' is out of range"));
  EXPECT_THAT(ErrorOf({"udp", "--target", ":1", "--size", "65508"}),
              HasSubstr("--size: '65508' is out of range"));
  EXPECT_THAT(ErrorOf({"udp", "--target", ":1", "--flows", "0"}), HasSubstr("--flows: bad number"));
  EXPECT_THAT(ErrorOf({"udp", "--target", ":1", "--reply-timeout", "0"}),
              HasSubstr("--reply-timeout: bad duration '0'"));
  EXPECT_THAT(ErrorOf({"udp", "--target", ":1", "--requests", "5", "--duration", "1"}),
              HasSubstr("--duration and --requests exclude each other"));
  EXPECT_THAT(ErrorOf({"udp", "--target", ":1", "--conns", "5"}),
              HasSubstr("--conns: not a flag of 'udp' mode"));
  EXPECT_THAT(ErrorOf({"udp", "--target", ":1", "--tls"}),
              HasSubstr("--tls: not a flag of 'udp' mode"));
  EXPECT_THAT(ErrorOf({"rr", "--target", ":1", "--flows", "5"}),
              HasSubstr("--flows: not a flag of 'rr' mode"));
  EXPECT_THAT(ErrorOf({"backend", "--udp", "--listen", ":0", "--mode", "sink"}),
              HasSubstr("--udp: the UDP backend only echoes"));
  EXPECT_THAT(ErrorOf({"backend", "--udp", "--listen", "unix:/tmp/x"}),
              HasSubstr("--listen: --udp needs an IP address"));
  EXPECT_THAT(ErrorOf({"udp", "--target", ":1", "--udp"}),
              HasSubstr("--udp: not a flag of 'udp' mode"));
}

TEST(ParseBoolTest, GoodAndBad) {
  for (const char* yes : {"true", "yes", "on", "1", "TRUE", "Yes"})
    EXPECT_TRUE(ParseBool(yes).value()) << yes;
  for (const char* no : {"false", "no", "off", "0", "FALSE", "Off"})
    EXPECT_FALSE(ParseBool(no).value()) << no;
  for (const char* bad : {"", "2", "maybe", "enable", "t", "truee", " true"}) {
    EXPECT_THAT(ParseBool(bad).error().message(), HasSubstr("is not a boolean")) << bad;
  }
}

TEST(HostOfTest, HostAsTyped) {
  EXPECT_EQ(HostOf("localhost:80"), "localhost");
  EXPECT_EQ(HostOf("[::1]:80"), "::1");
  EXPECT_EQ(HostOf("127.0.0.1:80"), "127.0.0.1");
  EXPECT_EQ(HostOf(":80"), "");
  EXPECT_EQ(HostOf("*:80"), "");
  EXPECT_EQ(HostOf("unix:/run/x.sock"), "");
  EXPECT_TRUE(IsIpLiteral("127.0.0.1"));
  EXPECT_TRUE(IsIpLiteral("::1"));
  EXPECT_FALSE(IsIpLiteral("localhost"));
  EXPECT_FALSE(IsIpLiteral(""));
}

// Every boolean flag, bare and with each spelling of true and false. A value
// that is not a boolean is a usage error naming the flag: "--tls-insecure=no"
// must never turn verification off.
TEST(ParseArgsTest, BooleanFlagsBothWays) {
  struct Case {
    const char* mode;
    const char* flag;
    bool Config::*field;
    std::vector<const char*> needs;  // other flags the flag requires
  };
  const Case cases[] = {
      {"bulk", "--verify", &Config::verify, {}},
      {"rr", "--tls", &Config::tls, {}},
      {"rr", "--tls-insecure", &Config::tls_insecure, {"--tls"}},
      {"rr", "--json", &Config::json, {}},
      {"rr", "--quiet", &Config::quiet, {}},
  };
  for (const Case& k : cases) {
    auto parse = [&](const std::string& arg) {
      std::vector<std::string> args = {"zrelay-load", k.mode, "--target", "127.0.0.1:1", arg};
      for (const char* n : k.needs) args.push_back(n);
      std::vector<const char*> argv;
      for (const std::string& a : args) argv.push_back(a.c_str());
      return ParseArgs(static_cast<int>(argv.size()), argv.data());
    };
    std::string flag = k.flag;
    auto bare = parse(flag);
    ASSERT_TRUE(bare.ok()) << flag << ": " << bare.error().message();
    EXPECT_TRUE((*bare).*k.field) << flag;
    for (const char* yes : {"true", "yes", "1", "on"}) {
      auto r = parse(flag + "=" + yes);
      ASSERT_TRUE(r.ok()) << flag << "=" << yes << ": " << r.error().message();
      EXPECT_TRUE((*r).*k.field) << flag << "=" << yes;
    }
    for (const char* no : {"false", "no", "0", "off"}) {
      auto r = parse(flag + "=" + no);
      ASSERT_TRUE(r.ok()) << flag << "=" << no << ": " << r.error().message();
      EXPECT_FALSE((*r).*k.field) << flag << "=" << no;
    }
    auto bad = parse(flag + "=nope");
    ASSERT_FALSE(bad.ok()) << flag;
    EXPECT_THAT(bad.error().message(), HasSubstr(flag + ": 'nope' is not a boolean"));
  }
  // A false boolean is as good as absent.
  EXPECT_TRUE(Parse({"rr", "--target", "127.0.0.1:1", "--tls-insecure=false"}).ok());
  EXPECT_TRUE(
      Parse({"rr", "--target", "127.0.0.1:1", "--tls", "--tls-ca", "a.pem", "--tls-insecure=no"})
          .ok());
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--tls-insecure"}),
              HasSubstr("--tls-insecure: needs --tls"));
}

// Every flag, the modes that take it and a good value (nullptr: a boolean).
// The help text documents each one.
struct FlagCase {
  const char* flag;
  std::vector<const char*> modes;
  const char* value;
};
const std::vector<FlagCase>& AllFlags() {
  static const std::vector<FlagCase> flags = {
      {"--target", {"bulk", "rr", "connect", "idle"}, "127.0.0.1:2"},
      {"--listen", {"backend"}, ":0"},
      {"--mode", {"backend"}, "echo"},
      {"--workers", {"bulk", "rr", "connect", "idle", "backend"}, "2"},
      {"--streams", {"bulk"}, "2"},
      {"--bytes", {"bulk"}, "1M"},
      {"--chunk", {"bulk"}, "4k"},
      {"--verify", {"bulk"}, nullptr},
      {"--direction", {"bulk"}, "down"},
      {"--conns", {"rr", "connect"}, "3"},
      {"--req", {"rr", "connect", "idle", "backend"}, "1"},
      {"--resp", {"rr", "connect", "idle", "backend"}, "1"},
      {"--requests", {"rr"}, "10"},
      {"--count", {"connect"}, "10"},
      {"--pairs", {"idle"}, "2"},
      {"--hold", {"idle"}, "1s"},
      {"--relay-pid", {"idle"}, "1"},
      {"--duration", {"bulk", "rr", "connect", "idle", "backend"}, "1s"},
      {"--timeout", {"bulk", "rr", "connect", "idle"}, "5s"},
      {"--connect-timeout", {"bulk", "rr", "connect", "idle"}, "1s"},
      {"--io-timeout", {"bulk", "rr", "connect", "idle"}, "1s"},
      {"--tls", {"bulk", "rr", "connect", "idle"}, nullptr},
      {"--tls-ca", {"bulk", "rr", "connect", "idle"}, "ca.pem"},
      {"--tls-insecure", {"bulk", "rr", "connect", "idle"}, nullptr},
      {"--sni", {"bulk", "rr", "connect", "idle"}, "example.test"},
      {"--json", {"bulk", "rr", "connect", "idle", "backend"}, nullptr},
      {"--quiet", {"bulk", "rr", "connect", "idle", "backend"}, nullptr},
  };
  return flags;
}

// "ok", or the error message.
std::string Outcome(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"zrelay-load"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  auto r = ParseArgs(static_cast<int>(argv.size()), argv.data());
  return r.ok() ? "ok" : r.error().message();
}

// A flag given to a mode that does not take it is refused, naming both, in
// either form and wherever it stands; in a mode that takes it, both forms
// ("--flag VALUE", "--flag=VALUE"; a boolean bare or "=yes") come out the same.
TEST(ParseArgsTest, EveryFlagInEveryMode) {
  const std::vector<std::pair<const char*, std::vector<std::string>>> modes = {
      {"bulk", {"--target", "127.0.0.1:1"}},
      {"rr", {"--target", "127.0.0.1:1"}},
      {"connect", {"--target", "127.0.0.1:1"}},
      {"idle", {"--target", "127.0.0.1:1", "--pairs", "1"}},
      {"backend", {"--listen", ":0"}},
  };
  for (const FlagCase& f : AllFlags()) {
    const std::string flag = f.flag;
    std::vector<std::string> spaced = {flag}, joined = {flag + "=yes"};
    if (f.value != nullptr) {
      spaced.push_back(f.value);
      joined = {flag + "=" + f.value};
    }
    for (const auto& [mode, base] : modes) {
      std::vector<std::string> head = {mode};
      for (size_t i = 0; i < base.size(); i += 2) {
        if (base[i] == flag) continue;  // the flag under test stands in for it
        head.push_back(base[i]);
        head.push_back(base[i + 1]);
      }
      auto with = [&](const std::vector<std::string>& tail, bool first) {
        std::vector<std::string> args = {mode};
        if (first) args.insert(args.end(), tail.begin(), tail.end());
        args.insert(args.end(), head.begin() + 1, head.end());
        if (!first) args.insert(args.end(), tail.begin(), tail.end());
        return Outcome(args);
      };
      bool takes = std::find(f.modes.begin(), f.modes.end(), std::string(mode)) != f.modes.end();
      if (takes) {
        std::string outcome = with(spaced, false);
        EXPECT_THAT(outcome, Not(HasSubstr("not a flag"))) << flag << " " << mode;
        EXPECT_THAT(outcome, Not(HasSubstr("unknown flag"))) << flag << " " << mode;
        EXPECT_EQ(with(joined, false), outcome) << flag << " " << mode;
        EXPECT_EQ(with(spaced, true), outcome) << flag << " " << mode;
      } else {
        const std::string refused = flag + ": not a flag of '" + mode + "' mode";
        EXPECT_EQ(with(spaced, false), refused);
        EXPECT_EQ(with(joined, false), refused);
        EXPECT_EQ(with(spaced, true), refused);
      }
    }
  }
}

TEST(ParseArgsTest, HelpTextNamesEveryFlag) {
  const std::string help = HelpText();
  for (const FlagCase& f : AllFlags()) {
    EXPECT_NE(help.find(std::string(f.flag) + (f.value ? " " : "")), std::string::npos) << f.flag;
  }
}

TEST(ParseArgsTest, RepeatedFlagsAreRefused) {
  const char* const rr[] = {"rr", "--target", "127.0.0.1:1"};
  auto error = [&](std::initializer_list<const char*> tail) {
    std::vector<std::string> args(std::begin(rr), std::end(rr));
    args.insert(args.end(), tail.begin(), tail.end());
    return Outcome(args);
  };
  EXPECT_EQ(error({"--conns=5", "--conns", "6"}), "--conns: given twice");
  EXPECT_EQ(error({"--conns", "5", "--conns=5"}), "--conns: given twice");
  EXPECT_EQ(error({"--json", "--json"}), "--json: given twice");
  EXPECT_EQ(error({"--json=no", "--json"}), "--json: given twice");
  EXPECT_EQ(error({"--tls", "--tls-ca", "a.pem", "--tls-ca=b.pem"}), "--tls-ca: given twice");
  EXPECT_EQ(Outcome({"rr", "--target", "127.0.0.1:1", "--target", "127.0.0.1:2"}),
            "--target: given twice");
}

TEST(ParseArgsTest, UnknownFlagsAndStrayArguments) {
  auto error = [](std::initializer_list<const char*> tail) {
    std::vector<std::string> args = {"bulk", "--target", "127.0.0.1:1"};
    args.insert(args.end(), tail.begin(), tail.end());
    return Outcome(args);
  };
  EXPECT_EQ(error({"--frobnicate"}), "unknown flag '--frobnicate'");
  EXPECT_EQ(error({"--frobnicate=3"}), "unknown flag '--frobnicate'");
  EXPECT_EQ(error({"--STREAMS", "2"}), "unknown flag '--STREAMS'");  // names are case-sensitive
  EXPECT_EQ(error({"---streams", "2"}), "unknown flag '---streams'");
  EXPECT_EQ(error({"-s", "2"}), "unknown flag '-s'");
  EXPECT_THAT(error({"--"}), HasSubstr("unexpected argument '--'"));
  EXPECT_THAT(error({"-"}), HasSubstr("unexpected argument '-'"));
  EXPECT_THAT(error({"--streams", "2", "3"}), HasSubstr("unexpected argument '3'"));
  // A boolean never takes the next argument as its value.
  EXPECT_THAT(error({"--verify", "false"}), HasSubstr("unexpected argument 'false'"));
  EXPECT_THAT(error({"--json", "yes"}), HasSubstr("unexpected argument 'yes'"));
  // The first mistake on the line is the one reported.
  EXPECT_EQ(error({"--frobnicate", "--chunk", "64q"}), "unknown flag '--frobnicate'");
}

// Values are taken as typed: after '=', or the next argument even when it
// starts with '-' (a flag that needs a value always takes one).
TEST(ParseArgsTest, ValuesAsTyped) {
  auto sni = [](const char* arg, const char* next) {
    std::vector<const char*> argv = {"zrelay-load", "rr", "--target", "127.0.0.1:1", "--tls", arg};
    if (next != nullptr) argv.push_back(next);
    auto r = ParseArgs(static_cast<int>(argv.size()), argv.data());
    return r.ok() ? r->sni : "error: " + r.error().message();
  };
  EXPECT_EQ(sni("--sni=a=b", nullptr), "a=b");
  EXPECT_EQ(sni("--sni=-x", nullptr), "-x");
  EXPECT_EQ(sni("--sni", "-x"), "-x");
  EXPECT_EQ(sni("--sni", ""), "error: --sni: empty name");
  EXPECT_THAT(sni("--sni=", nullptr), HasSubstr("error: --sni: "));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "127.0.0.1:1", "--streams", "-1"}),
              HasSubstr("--streams: bad number '-1'"));
  EXPECT_THAT(ErrorOf({"bulk", "--target", "--json"}), HasSubstr("--target: bad address '--json'"));
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--tls", "--tls-ca="}),
              HasSubstr("--tls-ca: "));
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--tls", "--tls-ca", ""}),
              HasSubstr("--tls-ca: empty file name"));
}

// Of several bad values, the first on the command line is reported, whatever
// order the flags are declared in.
TEST(ParseArgsTest, FirstBadValueWins) {
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--resp", "1q", "--conns", "0"}),
              HasSubstr("--resp: bad size '1q'"));
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--conns", "0", "--resp", "1q"}),
              HasSubstr("--conns: bad number '0'"));
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--json=maybe", "--conns", "0"}),
              HasSubstr("--json: 'maybe' is not a boolean"));
  EXPECT_THAT(ErrorOf({"rr", "--target", "127.0.0.1:1", "--conns", "0", "--json=maybe"}),
              HasSubstr("--conns: bad number '0'"));
}

TEST(FormatBytesTest, Units) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(64 * 1024), "64.00 KiB");
  EXPECT_EQ(FormatBytes(1.5 * (1 << 30)), "1.50 GiB");
}

}  // namespace
}  // namespace zrelay::load
