// A UDP listener in front of a real DNS server: dnsmasq as the backend,
// dig as the client, zrelayd --config in between. Answers come back exact
// (each name its own address, so a reply that reached the wrong client
// would show), many one-query clients each get their own flow, round-robin
// spreads the flows over two servers, TCP and UDP listeners share a port,
// and /metrics counts the datagrams.
//
// Each dnsmasq and zrelayd is this test's own, stopped by its pid; every
// wait and every loop is bounded in count and time.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/address.h"
#include "engine/socket.h"
#include "engine/unique_fd.h"
#include "tests/support/loop_test_util.h"
#include "tests/tools/admin_http_client.h"
#include "tests/tools/external_peers.h"
#include "tests/tools/log_test_util.h"
#include "tests/tools/zrelayd_process_util.h"

namespace zrelay {
namespace {

using testing::FindProgram;
using testing::ReadFile;
using testing::StartedZrelayd;

// Names queried one per dig process: q0.example.test ... q199.example.test.
constexpr int kNames = 200;

// Backend `k`'s answers: example.test is 10.1.2.3 (k = 0) or 10.4.5.6
// (k = 1), AAAA fd00::7 or fd00::8; qN.example.test is 10.(10 + k).0.N, so
// an answer tells both the name it is for and the server that gave it.
std::string ExampleAddress(int k) { return k == 0 ? "10.1.2.3" : "10.4.5.6"; }
std::string ExampleAddress6(int k) { return k == 0 ? "fd00::7" : "fd00::8"; }
std::string NameAddress(int k, int n) {
  return "10." + std::to_string(10 + k) + "." + std::to_string(n / 256) + "." +
         std::to_string(n % 256);
}

bool HaveTools() {
  return ::access(FindProgram("dnsmasq").c_str(), X_OK) == 0 &&
         ::access(FindProgram("dig").c_str(), X_OK) == 0;
}

// A loopback port free for both TCP and UDP right now (dnsmasq binds both,
// and a TCP listener shares the UDP listener's port below); 0 if none.
int FreeDnsPort(int family) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int port = testing::FreePort(family);
    if (port == 0) return 0;
    UniqueFd udp(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const Address address = testing::Loopback(family, port);
    if (udp && ::bind(udp.get(), address.sockaddr(), address.length()) == 0) return port;
  }
  return 0;
}

// Runs `command` with /bin/sh under `timeout seconds`; its stdout.
std::string Shell(const std::string& command, int seconds) {
  FILE* pipe =
      ::popen(("timeout " + std::to_string(seconds) + " sh -c '" + command + "'").c_str(), "r");
  if (pipe == nullptr) return "(popen failed)";
  std::string out;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  ::pclose(pipe);
  return out;
}

// One dig query (one try, 2 s): `args` is the name, type and options.
std::string Dig(const std::string& server, int port, const std::string& args) {
  return Shell(FindProgram("dig") + " @" + server + " -p " + std::to_string(port) + " " + args +
                   " +tries=1 +time=2",
               10);
}

// dnsmasq in the foreground on `server`:`port` (TCP and UDP), answering
// as backend `k`, nothing else: no upstream, no /etc/hosts.
class Dnsmasq {
 public:
  Dnsmasq(const std::string& dir, int k, const std::string& server, int port)
      : server_(server), port_(port) {
    const std::string name = dir + "/dnsmasq" + std::to_string(k);
    std::ofstream conf(name + ".conf");
    conf << "no-resolv\nno-hosts\nbind-interfaces\nlisten-address=" << server << "\nport=" << port
         << "\naddress=/example.test/" << ExampleAddress(k) << "\naddress=/example.test/"
         << ExampleAddress6(k) << "\n";
    for (int n = 0; n < kNames; ++n) {
      conf << "address=/q" << n << ".example.test/" << NameAddress(k, n) << "\n";
    }
    conf.close();
    log_ = name + ".log";
    // --pid-file= : none (not /run/dnsmasq/); as root it stays root (no
    // dnsmasq user to switch to is needed).
    pid_ = testing::SpawnShell(FindProgram("dnsmasq") + " --no-daemon --conf-file=" + name +
                                   ".conf --pid-file= " + (::getuid() == 0 ? "--user=root" : ""),
                               log_);
    // Ready once it answers (10 s at most).
    ready_ = testing::WaitFor(
        [&] { return Dig(server_, port_, "example.test +short") == ExampleAddress(k) + "\n"; },
        seconds(10), milliseconds(50));
  }
  ~Dnsmasq() { testing::StopPeer(pid_); }
  Dnsmasq(const Dnsmasq&) = delete;
  Dnsmasq& operator=(const Dnsmasq&) = delete;

  bool ready() const { return ready_; }
  std::string log() const { return ReadFile(log_); }

 private:
  std::string server_;
  int port_;
  std::string log_;
  pid_t pid_ = -1;
  bool ready_ = false;
};

// zrelayd --config, stopped (SIGTERM, then its exit awaited) on Stop() or
// at the end of the test, whichever comes first.
class Zrelayd {
 public:
  Zrelayd(const std::string& dir, const std::string& config, const std::string& listener)
      : path_(dir + "/zrelayd.toml") {
    std::ofstream(path_) << config;
    started_ = testing::StartZrelaydConfig(path_, listener);
  }
  ~Zrelayd() { Stop(); }
  Zrelayd(const Zrelayd&) = delete;
  Zrelayd& operator=(const Zrelayd&) = delete;

  const StartedZrelayd& started() const { return started_; }
  // Writes `config` over the file, sends SIGHUP and returns what zrelayd
  // logged up to "reload done" (10 s at most).
  std::string Reload(const std::string& config) {
    std::ofstream(path_) << config;
    ::kill(started_.process.pid, SIGHUP);
    const std::string lines = testing::ReadUntil(started_.process.err_fd, "reload done");
    log_ += lines;
    return lines;
  }
  // The exit status; its last lines are added to log().
  int Stop() {
    if (stopped_ || started_.process.pid <= 0) return exit_;
    stopped_ = true;
    ::kill(started_.process.pid, SIGTERM);
    exit_ = testing::WaitExit(started_.process.pid);
    log_ += testing::ReadAvailable(started_.process.err_fd);  // to EOF: it has exited
    ::close(started_.process.err_fd);
    return exit_;
  }
  std::string log() const { return started_.banner + log_; }

 private:
  const std::string path_;
  StartedZrelayd started_;
  std::string log_;
  bool stopped_ = false;
  int exit_ = -1;
};

// The address in "admin: listening on ADDR".
Result<Address> AdminAddress(const std::string& banner) {
  const std::string prefix = "admin: listening on ";
  const size_t at = banner.find(prefix);
  if (at == std::string::npos) return Error::Invalid("no admin line in: " + banner);
  const size_t start = at + prefix.size();
  return Address::Parse(banner.substr(start, banner.find('\n', start) - start));
}

// Scrapes /metrics until it has every line of `lines` (10 s at most): a
// flow's counters are summed from the workers without waiting for them.
std::string ScrapeUntil(const Address& admin, const std::vector<std::string>& lines) {
  std::string body;
  testing::WaitFor(
      [&] {
        Result<testing::HttpReply> reply = testing::HttpGet(admin, "/metrics");
        body = reply.ok() ? reply->body : "";
        for (const std::string& line : lines) {
          if (body.find("\n" + line + "\n") == std::string::npos) return false;
        }
        return true;
      },
      seconds(10), milliseconds(50));
  return body;
}

// A UDP listener "dns" (and an admin endpoint) in front of `backends`;
// `more` is added to the listener.
std::string UdpConfig(const std::string& listen, const std::vector<std::string>& backends,
                      const std::string& more = "") {
  std::string text =
      "workers = 2\ndrain_grace = \"200ms\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n"
      "[[listener]]\nname = \"dns\"\nprotocol = \"udp\"\nlisten = \"" +
      listen + "\"\nidle_timeout = \"5s\"\n" + more + "\n";
  for (const std::string& backend : backends) {
    text += "[[listener.backend]]\naddress = \"" + backend + "\"\n";
  }
  return text;
}

// kNames queries, q0.example.test up, each from its own dig process (its own
// source port: a flow of its own), one after the other; the answers by N.
std::map<int, std::string> QueryEveryName(const std::string& server, int port) {
  const std::string out =
      Shell("i=0; while [ $i -lt " + std::to_string(kNames) + " ]; do printf \"%s \" $i; " +
                FindProgram("dig") + " @" + server + " -p " + std::to_string(port) +
                " q$i.example.test +short +tries=1 +time=2 | tr -d \"\\n\"; echo; i=$((i+1)); done",
            120);
  std::map<int, std::string> answers;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    answers[std::stoi(line.substr(0, space))] = line.substr(space + 1);
  }
  return answers;
}

class ZrelaydUdpDns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveTools()) GTEST_SKIP() << "dnsmasq or dig missing: run bash tools/setup.sh";
    dir_ = testing::LogTestDir("udp_dns");
    ASSERT_FALSE(dir_.empty());
  }
  std::string dir_;
};

// One query of each kind through the UDP listener: the exact A and AAAA
// answers, and an error answer (REFUSED: no upstream) relayed as it is.
// A TCP listener on the same port carries DNS over TCP to the same server.
// /metrics counts three flows, three datagrams each way; SIGTERM drains.
TEST_F(ZrelaydUdpDns, ExactAnswersThroughAUdpListener) {
  const int backend_port = FreeDnsPort(AF_INET);
  const int port = FreeDnsPort(AF_INET);
  ASSERT_GT(backend_port, 0);
  ASSERT_GT(port, 0);
  Dnsmasq dnsmasq(dir_, 0, "127.0.0.1", backend_port);
  ASSERT_TRUE(dnsmasq.ready()) << dnsmasq.log();
  const std::string backend = "127.0.0.1:" + std::to_string(backend_port);
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  Zrelayd zrelayd(dir_,
                  UdpConfig(listen, {backend}) + "\n[[listener]]\nname = \"dns-tcp\"\nlisten = \"" +
                      listen + "\"\n[[listener.backend]]\naddress = \"" + backend + "\"\n",
                  "dns");
  ASSERT_TRUE(zrelayd.started().address.ok()) << zrelayd.log();
  EXPECT_EQ(zrelayd.started().address->port(), port);
  EXPECT_NE(zrelayd.log().find("listener dns: listening on " + listen +
                               "; 1 backend, round-robin; udp\n"),
            std::string::npos)
      << zrelayd.log();
  EXPECT_NE(
      zrelayd.log().find("listener dns-tcp: listening on " + listen + "; 1 backend, round-robin\n"),
      std::string::npos)
      << zrelayd.log();

  EXPECT_EQ(Dig("127.0.0.1", port, "example.test +short"), "10.1.2.3\n");
  EXPECT_EQ(Dig("127.0.0.1", port, "example.test AAAA +short"), "fd00::7\n");
  const std::string refused = Dig("127.0.0.1", port, "elsewhere.invalid");
  EXPECT_NE(refused.find("status: REFUSED"), std::string::npos) << refused;
  EXPECT_NE(refused.find("SERVER: 127.0.0.1#" + std::to_string(port) + "(127.0.0.1) (UDP)"),
            std::string::npos)
      << refused;
  // DNS over TCP: the TCP listener on the same port.
  const std::string tcp = Dig("127.0.0.1", port, "q7.example.test +tcp");
  EXPECT_NE(tcp.find("(127.0.0.1) (TCP)"), std::string::npos) << tcp;
  EXPECT_NE(tcp.find("\t10.10.0.7\n"), std::string::npos) << tcp;

  auto admin = AdminAddress(zrelayd.log());
  ASSERT_TRUE(admin.ok()) << admin.error().message();
  const std::vector<std::string> want = {
      "zrelay_listener_info{listener=\"dns\",protocol=\"udp\"} 1",
      "zrelay_listener_info{listener=\"dns-tcp\",protocol=\"tcp\"} 1",
      "zrelay_listener_connections_accepted_total{listener=\"dns\"} 3",
      "zrelay_listener_udp_datagrams_total{listener=\"dns\",side=\"client\"} 3",
      "zrelay_listener_udp_datagrams_total{listener=\"dns\",side=\"backend\"} 3",
      "zrelay_listener_udp_drops_total{listener=\"dns\",reason=\"flow_cap\"} 0",
      "zrelay_listener_udp_backend_unreachable_total{listener=\"dns\"} 0",
      "zrelay_listener_connections_accepted_total{listener=\"dns-tcp\"} 1",
  };
  const std::string metrics = ScrapeUntil(*admin, want);
  for (const std::string& line : want) {
    EXPECT_NE(metrics.find("\n" + line + "\n"), std::string::npos) << line << "\n" << metrics;
  }

  EXPECT_EQ(zrelayd.Stop(), 0) << zrelayd.log();
  EXPECT_NE(zrelayd.log().find("udp totals: flows 3, datagrams client->backend 3, "
                               "backend->client 3"),
            std::string::npos)
      << zrelayd.log();
}

// kNames clients, one query each with its own name: every one gets its own
// name's address (a reply delivered to another flow's client would carry
// another N), and /metrics counts a datagram each way per query. With
// udp_responses = 1 each flow ends with its answer: none is left open.
TEST_F(ZrelaydUdpDns, ManyClientsEachGetTheirOwnAnswer) {
  const int backend_port = FreeDnsPort(AF_INET);
  const int port = FreeDnsPort(AF_INET);
  ASSERT_GT(backend_port, 0);
  ASSERT_GT(port, 0);
  Dnsmasq dnsmasq(dir_, 0, "127.0.0.1", backend_port);
  ASSERT_TRUE(dnsmasq.ready()) << dnsmasq.log();
  Zrelayd zrelayd(dir_,
                  UdpConfig("127.0.0.1:" + std::to_string(port),
                            {"127.0.0.1:" + std::to_string(backend_port)}, "udp_responses = 1\n"),
                  "dns");
  ASSERT_TRUE(zrelayd.started().address.ok()) << zrelayd.log();

  const std::map<int, std::string> answers = QueryEveryName("127.0.0.1", port);
  EXPECT_EQ(answers.size(), static_cast<size_t>(kNames));
  int right = 0;
  for (int n = 0; n < kNames; ++n) {
    auto it = answers.find(n);
    const std::string got = it == answers.end() ? "(no line)" : it->second;
    if (got == NameAddress(0, n)) {
      ++right;
    } else {
      ADD_FAILURE() << "q" << n << ".example.test: got \"" << got << "\", want "
                    << NameAddress(0, n);
      if (kNames - right > 5) break;  // the first few say enough
    }
  }
  EXPECT_EQ(right, kNames);

  auto admin = AdminAddress(zrelayd.log());
  ASSERT_TRUE(admin.ok()) << admin.error().message();
  const std::string n = std::to_string(kNames);
  const std::vector<std::string> want = {
      "zrelay_listener_udp_datagrams_total{listener=\"dns\",side=\"client\"} " + n,
      "zrelay_listener_udp_datagrams_total{listener=\"dns\",side=\"backend\"} " + n,
      "zrelay_listener_udp_drops_total{listener=\"dns\",reason=\"receive_buffer\"} 0",
      "zrelay_listener_udp_drops_total{listener=\"dns\",reason=\"send\"} 0",
      "zrelay_listener_connections_open{listener=\"dns\"} 0",
      "zrelay_listener_connections_accepted_total{listener=\"dns\"} " + n,
  };
  const std::string metrics = ScrapeUntil(*admin, want);
  for (const std::string& line : want) {
    EXPECT_NE(metrics.find("\n" + line + "\n"), std::string::npos) << line << "\n" << metrics;
  }
  EXPECT_EQ(zrelayd.Stop(), 0) << zrelayd.log();
}

// Two servers with different answers behind one round-robin listener: each
// new flow takes the next server, so the kNames one-query clients are
// answered by both about evenly, each with its own name's address.
TEST_F(ZrelaydUdpDns, RoundRobinSpreadsFlowsAcrossServers) {
  const int port = FreeDnsPort(AF_INET);
  const int first_port = FreeDnsPort(AF_INET);
  ASSERT_GT(port, 0);
  ASSERT_GT(first_port, 0);
  Dnsmasq first(dir_, 0, "127.0.0.1", first_port);
  ASSERT_TRUE(first.ready()) << first.log();
  const int second_port = FreeDnsPort(AF_INET);
  ASSERT_GT(second_port, 0);
  Dnsmasq second(dir_, 1, "127.0.0.1", second_port);
  ASSERT_TRUE(second.ready()) << second.log();
  Zrelayd zrelayd(
      dir_,
      UdpConfig("127.0.0.1:" + std::to_string(port), {"127.0.0.1:" + std::to_string(first_port),
                                                      "127.0.0.1:" + std::to_string(second_port)}),
      "dns");
  ASSERT_TRUE(zrelayd.started().address.ok()) << zrelayd.log();

  const std::map<int, std::string> answers = QueryEveryName("127.0.0.1", port);
  int by[2] = {0, 0};
  for (int n = 0; n < kNames; ++n) {
    auto it = answers.find(n);
    const std::string got = it == answers.end() ? "(no line)" : it->second;
    if (got == NameAddress(0, n)) {
      ++by[0];
    } else if (got == NameAddress(1, n)) {
      ++by[1];
    } else {
      ADD_FAILURE() << "q" << n << ".example.test: got \"" << got << "\"";
    }
  }
  EXPECT_EQ(by[0] + by[1], kNames);
  // Round-robin on each of the 2 workers; two clients that happened to get
  // the same source port within idle_timeout share a flow.
  EXPECT_GE(by[0], kNames * 2 / 5) << by[0] << " / " << by[1];
  EXPECT_GE(by[1], kNames * 2 / 5) << by[0] << " / " << by[1];
  EXPECT_EQ(zrelayd.Stop(), 0) << zrelayd.log();
}

// IPv6 end to end: dnsmasq on ::1, the listener on [::1].
TEST_F(ZrelaydUdpDns, OverIpv6) {
  const int backend_port = FreeDnsPort(AF_INET6);
  const int port = FreeDnsPort(AF_INET6);
  if (backend_port == 0 || port == 0) GTEST_SKIP() << "no IPv6 loopback here";
  Dnsmasq dnsmasq(dir_, 0, "::1", backend_port);
  ASSERT_TRUE(dnsmasq.ready()) << dnsmasq.log();
  Zrelayd zrelayd(
      dir_, UdpConfig("[::1]:" + std::to_string(port), {"[::1]:" + std::to_string(backend_port)}),
      "dns");
  ASSERT_TRUE(zrelayd.started().address.ok()) << zrelayd.log();
  EXPECT_EQ(zrelayd.started().address->ToString(), "[::1]:" + std::to_string(port));

  EXPECT_EQ(Dig("::1", port, "example.test AAAA +short"), "fd00::7\n");
  EXPECT_EQ(Dig("::1", port, "example.test +short"), "10.1.2.3\n");
  for (int n : {0, 99, 199}) {
    EXPECT_EQ(Dig("::1", port, "q" + std::to_string(n) + ".example.test +short"),
              NameAddress(0, n) + "\n");
  }
  EXPECT_EQ(zrelayd.Stop(), 0) << zrelayd.log();
}

// SIGHUP with a listener's protocol changed under the same name and
// address: no Reconfigure (a TCP listener cannot become a UDP one), the old
// listener closes and a new one starts, as for new addresses; DNS over TCP
// ends there and DNS over UDP begins.
TEST_F(ZrelaydUdpDns, ReloadTurnsATcpListenerIntoAUdpOne) {
  const int backend_port = FreeDnsPort(AF_INET);
  const int port = FreeDnsPort(AF_INET);
  ASSERT_GT(backend_port, 0);
  ASSERT_GT(port, 0);
  Dnsmasq dnsmasq(dir_, 0, "127.0.0.1", backend_port);
  ASSERT_TRUE(dnsmasq.ready()) << dnsmasq.log();
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  const std::string tcp_config =
      "workers = 2\ndrain_grace = \"200ms\"\n[[listener]]\nname = \"dns\"\nlisten = \"" + listen +
      "\"\n[[listener.backend]]\naddress = \"127.0.0.1:" + std::to_string(backend_port) + "\"\n";
  Zrelayd zrelayd(dir_, tcp_config, "dns");
  ASSERT_TRUE(zrelayd.started().address.ok()) << zrelayd.log();
  const std::string tcp = Dig("127.0.0.1", port, "q1.example.test +tcp +short");
  EXPECT_EQ(tcp, NameAddress(0, 1) + "\n");

  std::string udp_config = tcp_config;
  udp_config.replace(udp_config.find("listen = "), 0, "protocol = \"udp\"\n");
  const std::string reload = zrelayd.Reload(udp_config);
  EXPECT_NE(reload.find("listener dns: protocol tcp -> udp: the old one closes, a new one starts"),
            std::string::npos)
      << reload;
  EXPECT_NE(reload.find("listener dns: closed on " + listen), std::string::npos) << reload;
  EXPECT_NE(reload.find("listener dns: listening on " + listen + "; 1 backend, round-robin; udp"),
            std::string::npos)
      << reload;
  EXPECT_EQ(reload.find("reconfigured"), std::string::npos) << reload;
  EXPECT_EQ(reload.find("refused"), std::string::npos) << reload;

  EXPECT_EQ(Dig("127.0.0.1", port, "q2.example.test +short"), NameAddress(0, 2) + "\n");
  const std::string gone = Dig("127.0.0.1", port, "q3.example.test +tcp +short");
  EXPECT_EQ(gone.find(NameAddress(0, 3)), std::string::npos) << gone;
  EXPECT_EQ(zrelayd.Stop(), 0) << zrelayd.log();
}

// A server that is down (nothing on its port: the kernel answers with ICMP
// port unreachable) beside one that is up, with retries = 1: a flow whose
// first datagram was refused sends it to the other server, so every query
// is answered, and /metrics counts the unreachable answers.
TEST_F(ZrelaydUdpDns, RetriesPastAServerThatIsDown) {
  const int port = FreeDnsPort(AF_INET);
  const int up_port = FreeDnsPort(AF_INET);
  ASSERT_GT(port, 0);
  ASSERT_GT(up_port, 0);
  Dnsmasq up(dir_, 0, "127.0.0.1", up_port);
  ASSERT_TRUE(up.ready()) << up.log();
  const int down_port = FreeDnsPort(AF_INET);  // nothing listens there
  ASSERT_GT(down_port, 0);
  Zrelayd zrelayd(
      dir_,
      UdpConfig("127.0.0.1:" + std::to_string(port),
                {"127.0.0.1:" + std::to_string(down_port), "127.0.0.1:" + std::to_string(up_port)},
                "retries = 1\n"),
      "dns");
  ASSERT_TRUE(zrelayd.started().address.ok()) << zrelayd.log();

  for (int n = 0; n < 10; ++n) {
    EXPECT_EQ(Dig("127.0.0.1", port, "q" + std::to_string(n) + ".example.test +short"),
              NameAddress(0, n) + "\n")
        << "query " << n;
  }
  auto admin = AdminAddress(zrelayd.log());
  ASSERT_TRUE(admin.ok()) << admin.error().message();
  Result<testing::HttpReply> reply = testing::HttpGet(*admin, "/metrics");
  ASSERT_TRUE(reply.ok()) << reply.error().message();
  const std::string prefix = "\nzrelay_listener_udp_backend_unreachable_total{listener=\"dns\"} ";
  const size_t at = reply->body.find(prefix);
  ASSERT_NE(at, std::string::npos) << reply->body;
  EXPECT_GE(std::stoull(reply->body.substr(at + prefix.size())), 1u) << reply->body;
  EXPECT_EQ(zrelayd.Stop(), 0) << zrelayd.log();
}

}  // namespace
}  // namespace zrelay
