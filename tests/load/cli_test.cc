// The zrelay-load binary as scripts use it: child processes of the built
// binary (a data dependency), exit codes, messages naming the flag, the
// backend's "listening on" line, --json output, SIGTERM.
//
// The binary's path comes as the first argument (BUILD passes $(location)).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string g_binary;

struct Child {
  pid_t pid = -1;
  int out = -1;  // stdout pipe
  int err = -1;  // stderr pipe
};

Child Spawn(const std::vector<std::string>& args) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(g_binary.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(g_binary.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  return {pid, out[0], err[0]};
}

// Reads until EOF or the deadline.
std::string ReadAll(int fd, std::chrono::milliseconds deadline) {
  std::string s;
  auto end = std::chrono::steady_clock::now() + deadline;
  char buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    struct pollfd p {
      fd, POLLIN, 0
    };
    if (::poll(&p, 1, 50) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    s.append(buf, static_cast<size_t>(n));
  }
  return s;
}

// Reads one line (without the newline) within the deadline.
std::string ReadLine(int fd, std::chrono::milliseconds deadline) {
  std::string s;
  auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    struct pollfd p {
      fd, POLLIN, 0
    };
    if (::poll(&p, 1, 50) <= 0) continue;
    char c;
    if (::read(fd, &c, 1) != 1 || c == '\n') break;
    s += c;
  }
  return s;
}

// Waits for the child (killing it past the deadline); returns its exit code,
// or 128 + signal.
int Wait(pid_t pid, std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct Outcome {
  int code;
  std::string out, err;
};

Outcome RunToEnd(const std::vector<std::string>& args,
                 std::chrono::milliseconds deadline = std::chrono::milliseconds(30000)) {
  Child c = Spawn(args);
  Outcome o;
  o.out = ReadAll(c.out, deadline);
  o.err = ReadAll(c.err, std::chrono::milliseconds(1000));
  o.code = Wait(c.pid, std::chrono::milliseconds(5000));
  ::close(c.out);
  ::close(c.err);
  return o;
}

// The value after "key": in a one-line JSON object (numbers and bools).
std::string JsonValue(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\": ");
  if (at == std::string::npos) return "<missing>";
  at += key.size() + 4;
  size_t end = json.find_first_of(",}", at);
  return json.substr(at, end - at);
}

// A backend child on a kernel-chosen port; stopped with SIGTERM.
class BackendChild {
 public:
  explicit BackendChild(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"backend", "--listen",   "127.0.0.1:0", "--workers",
                                     "1",       "--duration", "60",          "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    child_ = Spawn(args);
    line_ = ReadLine(child_.out, std::chrono::milliseconds(10000));
    size_t colon = line_.find("127.0.0.1:");
    if (colon != std::string::npos) {
      address_ = line_.substr(colon, line_.find(' ', colon) - colon);
    }
  }
  ~BackendChild() {
    if (child_.pid > 0 && !stopped_) Stop();
    ::close(child_.out);
    ::close(child_.err);
  }
  // SIGTERM; returns the exit code and the totals line.
  int Stop(std::string* totals = nullptr) {
    stopped_ = true;
    ::kill(child_.pid, SIGTERM);
    std::string rest = ReadAll(child_.out, std::chrono::milliseconds(5000));
    if (totals) *totals = rest;
    return Wait(child_.pid, std::chrono::milliseconds(5000));
  }
  const std::string& address() const { return address_; }
  const std::string& first_line() const { return line_; }

 private:
  Child child_;
  std::string line_;
  std::string address_;
  bool stopped_ = false;
};

TEST(CliTest, HelpExitsZeroAndDocumentsTheFdLimit) {
  Outcome o = RunToEnd({"--help"});
  EXPECT_EQ(o.code, 0);
  EXPECT_NE(o.out.find("zrelay-load bulk"), std::string::npos);
  EXPECT_NE(o.out.find("20000 fds"), std::string::npos);
  EXPECT_NE(o.out.find("~9000 pairs"), std::string::npos);
}

TEST(CliTest, UsageErrorsExitTwoNamingTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{}, "missing mode"},
      {{"bulk", "--target", "127.0.0.1:1", "--chunk", "12x"}, "--chunk: bad size '12x'"},
      {{"bulk", "--target", "nowhere"}, "--target: bad address"},
      {{"rr", "--target", "127.0.0.1:1", "--conns"}, "--conns: 1 required N missing"},
      {{"connect", "--target", "127.0.0.1:1", "--verify"}, "--verify: not a flag of 'connect'"},
      {{"backend", "--listen", ":0", "--streams=2"}, "--streams: not a flag of 'backend'"},
      {{"rr", "--target", "127.0.0.1:1", "--frobnicate"}, "unknown flag '--frobnicate'"},
      {{"rr", "--target", "127.0.0.1:1", "--json=maybe"}, "--json: 'maybe' is not a boolean"},
      {{"rr", "--target", "127.0.0.1:1", "--json", "no"}, "unexpected argument 'no'"},
      {{"rr", "--target", "127.0.0.1:1", "--conns=2", "--conns=3"}, "--conns: given twice"},
      {{"idle", "--target", "127.0.0.1:1", "--pairs", "1", "--relay-pid", "4194303"},
       "--relay-pid 4194303"},
  };
  for (const Case& c : cases) {
    Outcome o = RunToEnd(c.args, std::chrono::milliseconds(10000));
    EXPECT_EQ(o.code, 2) << c.message;
    EXPECT_NE(o.err.find(c.message), std::string::npos) << "stderr: " << o.err;
  }
}

TEST(CliTest, BulkVerifyThroughTwoProcessesPrintsJson) {
  BackendChild backend({"--mode", "verify"});
  ASSERT_FALSE(backend.address().empty()) << "first line: " << backend.first_line();
  EXPECT_NE(backend.first_line().find("mode verify"), std::string::npos);
  Outcome o = RunToEnd({"bulk", "--target", backend.address(), "--bytes", "16M", "--verify",
                        "--streams", "2", "--json", "--workers", "1"});
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(JsonValue(o.out, "mode"), "\"bulk\"");
  EXPECT_EQ(JsonValue(o.out, "complete"), "true");
  EXPECT_EQ(JsonValue(o.out, "bytes"), std::to_string(16 << 20));
  EXPECT_EQ(JsonValue(o.out, "mismatches"), "0");
  EXPECT_EQ(JsonValue(o.out, "errors"), "0");
  EXPECT_NE(JsonValue(o.out, "gbit_per_s"), "<missing>");
  std::string totals;
  EXPECT_EQ(backend.Stop(&totals), 0);  // SIGTERM: a clean exit with totals
  EXPECT_EQ(JsonValue(totals, "verified"), "2") << totals;
  EXPECT_EQ(JsonValue(totals, "bytes_in"), std::to_string(16 << 20)) << totals;
}

TEST(CliTest, RrAndConnectPrintTheirKeys) {
  BackendChild backend({"--mode", "fixed", "--req", "128", "--resp", "128"});
  ASSERT_FALSE(backend.address().empty()) << backend.first_line();
  Outcome rr = RunToEnd({"rr", "--target", backend.address(), "--requests", "2000", "--conns", "4",
                         "--json", "--workers", "1"});
  EXPECT_EQ(rr.code, 0) << rr.out << rr.err;
  EXPECT_EQ(JsonValue(rr.out, "requests"), "2000");
  for (const char* key : {"rps", "p50_us", "p90_us", "p99_us", "p999_us"}) {
    EXPECT_NE(JsonValue(rr.out, key), "<missing>") << key;
  }
  Outcome connect = RunToEnd(
      {"connect", "--target", backend.address(), "--count", "100", "--json", "--workers", "1"});
  EXPECT_EQ(connect.code, 0) << connect.out << connect.err;
  EXPECT_EQ(JsonValue(connect.out, "connections"), "100");
  EXPECT_NE(JsonValue(connect.out, "conns_per_s"), "<missing>");
}

TEST(CliTest, UdpThroughTwoProcessesPrintsJson) {
  BackendChild backend({"--udp"});
  ASSERT_FALSE(backend.address().empty()) << backend.first_line();
  EXPECT_NE(backend.first_line().find("udp, mode echo"), std::string::npos);
  Outcome o = RunToEnd({"udp", "--target", backend.address(), "--requests", "3000", "--flows", "4",
                        "--size", "1400", "--reply-timeout", "20s", "--json", "--workers", "1"});
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(JsonValue(o.out, "mode"), "\"udp\"");
  EXPECT_EQ(JsonValue(o.out, "requests"), "3000");
  EXPECT_EQ(JsonValue(o.out, "sent"), "3000");
  EXPECT_EQ(JsonValue(o.out, "lost"), "0");
  EXPECT_EQ(JsonValue(o.out, "mismatches"), "0");
  EXPECT_EQ(JsonValue(o.out, "datagrams"), "6000");
  for (const char* key :
       {"rps", "loss_rate", "late", "p50_us", "p99_us", "client_cpu_s", "client_cpu_us_per_req"}) {
    EXPECT_NE(JsonValue(o.out, key), "<missing>") << key;
  }
  std::string totals;
  EXPECT_EQ(backend.Stop(&totals), 0);
  EXPECT_EQ(JsonValue(totals, "datagrams_in"), "3000") << totals;
  EXPECT_EQ(JsonValue(totals, "bytes_out"), std::to_string(3000 * 1400)) << totals;
}

TEST(CliTest, FailedRunExitsOneWithATable) {
  // Nothing listens on port 1 of loopback here; a refused connect is a run
  // error (exit 1), not a usage error.
  Outcome o = RunToEnd({"connect", "--target", "127.0.0.1:1", "--count", "3"});
  EXPECT_EQ(o.code, 1) << o.out << o.err;
  EXPECT_NE(o.out.find("refused 3"), std::string::npos) << o.out;
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: cli_test PATH_TO_ZRELAY_LOAD\n");
    return 2;
  }
  g_binary = argv[1];
  return RUN_ALL_TESTS();
}
