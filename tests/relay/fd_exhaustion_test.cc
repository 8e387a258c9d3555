// A backend connect that finds no fd left (socket() fails with EMFILE) ends
// its pair as kConnectFailed, naming the cause, and the listener stops
// accepting on that worker for its retry interval: the next client waits in
// the backlog and is served once fds are free, instead of being accepted
// and reset like the one before it (regression: a burst past the fd limit
// turned into a stream of resets). Nothing leaks: once every pair closed,
// the process has exactly the fds it had before.
//
// The engine runs in a forked child with a small RLIMIT_NOFILE, so the
// limit cannot hurt the test runner; the parent drives the clients and the
// backend and asks the child for its counters over a pipe.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "engine/socket.h"
#include "engine/worker_pool.h"
#include "relay/relay.h"
#include "tests/engine/fd_test_util.h"
#include "tests/relay/holding_backend.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::HoldingBackend;

constexpr int kHeldPairs = 3;
// Fds left to the child: the held pairs' sockets and one more accept, whose
// backend socket() then fails.
constexpr int kFreeFds = 2 * kHeldPairs + 1;
// Long enough for the held pairs to finish while the listener backs off.
const Duration kRetry = seconds(3);
constexpr int kFdScan = 4096;  // fd numbers the child counts (it has far fewer)

struct ChildReport {
  char error[160] = {};  // set when the child could not go on
  int port = 0;          // the listener under test
  int warm_port = 0;     // a listener whose backend answers at once
  int refused_port = 0;  // a listener whose backend connect fails at once
  int open_fds = 0;
  uint64_t accepted = 0;
  uint64_t pairs_open = 0;
  uint64_t pairs_closed = 0;
  uint64_t connect_failures = 0;
  uint64_t backend_fd_exhausted = 0;
  uint64_t accept_fd_exhausted = 0;
  uint64_t connect_failed_closes = 0;
  int connect_failed_error = 0;
  char connect_failed_detail[160] = {};
};

// Reads exactly `len` bytes within `deadline`; false on timeout or EOF.
bool ReadWithin(int fd, void* buf, size_t len, Duration deadline) {
  const TimePoint end = Clock::now() + deadline;
  size_t done = 0;
  while (done < len) {
    const auto left = std::chrono::duration_cast<milliseconds>(end - Clock::now()).count();
    struct pollfd p {
      fd, POLLIN, 0
    };
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) != 1) return false;
    ssize_t n = ::read(fd, static_cast<char*>(buf) + done, len - done);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// The child: an engine with one worker, answering commands from the parent
// ('l': lower the fd limit, 's': report, 'q': exit). No gtest here.
//
// Before the limit is lowered, every path the test takes afterwards runs
// once, so that UBSan's vptr cache is warm (see PrimeBackOffPath): the
// listener's back-off, a relayed pair (through the warm listener) and a
// backend connect that fails inside Connector::Start (the refused one).
[[noreturn]] void ChildMain(int command_fd, int report_fd) {
  ChildReport report;
  auto fail = [&](const std::string& why) {
    std::snprintf(report.error, sizeof(report.error), "%s", why.c_str());
    (void)!::write(report_fd, &report, sizeof(report));
    ::_exit(1);
  };
  int backend_ports[2] = {};  // held, warm
  if (!ReadWithin(command_fd, backend_ports, sizeof(backend_ports), seconds(10))) {
    fail("no backend ports from the parent");
  }
  {
    auto pool = WorkerPool::Start({.workers = 1});
    if (!pool) fail(pool.error().message());
    std::string why;
    if (!testing::PrimeBackOffPath(**pool, &why)) fail(why);
  }
  std::mutex mu;
  ChildReport closes;  // the connect_failed_* fields, guarded by mu
  auto engine = testing::StartEngine({.workers = 1, .mode = RelayMode::kCopy});
  if (!engine) fail(engine.error().message());
  ListenOptions options;
  options.address = testing::Loopback();
  options.backends.push_back(
      BackendOptions{testing::Loopback(AF_INET, backend_ports[0]), nullptr, {}});
  options.max_connections = 1000;  // far above the fds: exhaustion, not the limit, stops it
  options.fd_exhausted_retry = kRetry;
  options.on_close = [&](const PairStats& s) {
    if (s.cause != CloseCause::kConnectFailed) return;
    std::lock_guard<std::mutex> lock(mu);
    if (closes.connect_failed_closes++ == 0) {
      closes.connect_failed_error = s.error;
      std::snprintf(closes.connect_failed_detail, sizeof(closes.connect_failed_detail), "%s",
                    s.detail.c_str());
    }
  };
  auto id = (*engine)->Listen(options);
  if (!id) fail(id.error().message());
  report.port = (*engine)->ListenAddress(*id).value().port();
  ListenOptions warm;
  warm.address = testing::Loopback();
  warm.backends.push_back(
      BackendOptions{testing::Loopback(AF_INET, backend_ports[1]), nullptr, {}});
  warm.max_connections = 1000;
  auto warm_id = (*engine)->Listen(warm);
  if (!warm_id) fail(warm_id.error().message());
  report.warm_port = (*engine)->ListenAddress(*warm_id).value().port();
  warm.backends[0].address = Address::Parse("unix:/nonexistent/zrelay-fd-exhaustion").value();
  auto refused_id = (*engine)->Listen(warm);
  if (!refused_id) fail(refused_id.error().message());
  report.refused_port = (*engine)->ListenAddress(*refused_id).value().port();
  (void)!::write(report_fd, &report, sizeof(report));

  for (;;) {
    char command = 0;
    if (!ReadWithin(command_fd, &command, 1, seconds(60))) fail("no command from the parent");
    if (command == 'q') ::_exit(0);
    const WorkerStats s = (*engine)->Stats().total;
    report.open_fds = testing::OpenFdsBelow(kFdScan);
    report.accepted = s.accepted;
    report.pairs_open = s.pairs_open;
    report.pairs_closed = s.pairs_closed;
    report.connect_failures = s.connect_failures;
    report.backend_fd_exhausted = s.backend_fd_exhausted;
    report.accept_fd_exhausted = s.accept_fd_exhausted;
    {
      std::lock_guard<std::mutex> lock(mu);
      report.connect_failed_closes = closes.connect_failed_closes;
      report.connect_failed_error = closes.connect_failed_error;
      std::memcpy(report.connect_failed_detail, closes.connect_failed_detail,
                  sizeof(report.connect_failed_detail));
    }
    if (command == 'l') {  // after the count: the report is the baseline
      struct rlimit limit {};
      limit.rlim_cur = limit.rlim_max = testing::LimitLeavingFreeFds(kFreeFds);
      if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) fail("setrlimit failed");
    }
    (void)!::write(report_fd, &report, sizeof(report));
  }
}

class BackendFdExhaustionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int command[2], report[2];
    ASSERT_EQ(::pipe2(command, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
    // Forked before any thread of this test starts (the backend's comes
    // after), so the child inherits no lock another thread held.
    child_ = ::fork();
    ASSERT_GE(child_, 0) << std::strerror(errno);
    if (child_ == 0) {
      ::close(command[1]);
      ::close(report[0]);
      ChildMain(command[0], report[1]);
    }
    ::close(command[0]);
    ::close(report[1]);
    command_.Reset(command[1]);
    report_.Reset(report[0]);
  }
  void TearDown() override {
    if (child_ <= 0) return;  // reaped already (never kill(-1, ...))
    ::kill(child_, SIGKILL);
    ::waitpid(child_, nullptr, 0);
  }

  // Sends `command` and returns the child's report.
  ChildReport Ask(char command) {
    ChildReport report;
    if (::write(command_.get(), &command, 1) != 1 ||
        !ReadWithin(report_.get(), &report, sizeof(report), seconds(10))) {
      std::snprintf(report.error, sizeof(report.error), "no report for '%c'", command);
    }
    return report;
  }

  pid_t child_ = -1;
  UniqueFd command_;
  UniqueFd report_;
};

UniqueFd ConnectAndSend(int port, uint64_t size) {
  auto fd = testing::BlockingConnect(testing::Loopback(AF_INET, port));
  EXPECT_TRUE(fd.ok()) << fd.error().message();
  if (!fd.ok()) return UniqueFd();
  EXPECT_EQ(testing::SendPattern(fd->get(), HoldingBackend::kUpSeed, size), size);
  return std::move(fd).value();
}

void ExpectEcho(int fd, uint64_t size, const char* who) {
  testing::Received r = testing::ReceivePattern(fd, HoldingBackend::kDownSeed);
  EXPECT_EQ(r.error, 0) << who;
  EXPECT_EQ(r.bytes, size) << who;
  EXPECT_EQ(r.first_mismatch, -1) << who;
}

TEST_F(BackendFdExhaustionTest, BacksOffThenServesTheNextClientAndLeaksNoFd) {
  HoldingBackend backend;
  HoldingBackend warm_backend;
  warm_backend.Serve();
  const int backend_ports[2] = {backend.address().port(), warm_backend.address().port()};
  ASSERT_EQ(::write(command_.get(), backend_ports, sizeof(backend_ports)),
            static_cast<ssize_t>(sizeof(backend_ports)));
  ChildReport started;
  ASSERT_TRUE(ReadWithin(report_.get(), &started, sizeof(started), seconds(10)));
  ASSERT_EQ(started.error[0], '\0') << "child: " << started.error;
  const int port = started.port;

  // Warm-up, with fds to spare: one relayed pair, one failed connect.
  UniqueFd warm = ConnectAndSend(started.warm_port, 300);
  ExpectEcho(warm.get(), 300, "warm-up client");
  auto refused = testing::BlockingConnect(testing::Loopback(AF_INET, started.refused_port));
  ASSERT_TRUE(refused.ok()) << refused.error().message();
  EXPECT_EQ(testing::ReceivePattern(refused->get(), 0).bytes, 0u);
  ChildReport warmed;
  ASSERT_TRUE(testing::WaitFor([&] {
    warmed = Ask('s');
    return warmed.pairs_closed == 2 || warmed.error[0] != '\0';
  }));
  ASSERT_EQ(warmed.error[0], '\0') << warmed.error;
  const ChildReport baseline = Ask('l');
  ASSERT_EQ(baseline.error[0], '\0') << baseline.error;

  // Pairs that use up all but one of the child's fds.
  std::vector<UniqueFd> held;
  for (int i = 0; i < kHeldPairs; ++i) held.push_back(ConnectAndSend(port, 1000 + i));
  ASSERT_TRUE(testing::WaitFor([&] { return backend.accepted() == kHeldPairs; }, seconds(10)));

  // This client takes the last fd; its backend socket() fails. (It sends
  // nothing: the reset may come before any send could.)
  auto unlucky = testing::BlockingConnect(testing::Loopback(AF_INET, port));
  ASSERT_TRUE(unlucky.ok()) << unlucky.error().message();
  ChildReport report;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        report = Ask('s');
        return report.backend_fd_exhausted > 0 || report.error[0] != '\0';
      },
      seconds(10)));
  ASSERT_EQ(report.error[0], '\0') << report.error;
  testing::Received cut = testing::ReceivePattern(unlucky->get(), HoldingBackend::kDownSeed);
  EXPECT_EQ(cut.bytes, 0u) << "the client whose backend could not be connected gets nothing";

  // The next client arrives while the worker backs off: it waits in the
  // backlog rather than being accepted into a socket() that would fail.
  UniqueFd patient = ConnectAndSend(port, 700);
  backend.Serve();
  for (int i = 0; i < kHeldPairs; ++i) ExpectEcho(held[i].get(), 1000 + i, "held client");
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        report = Ask('s');
        return report.pairs_closed - baseline.pairs_closed == kHeldPairs + 1 ||
               report.error[0] != '\0';
      },
      seconds(10)));
  EXPECT_EQ(report.accepted - baseline.accepted, static_cast<uint64_t>(kHeldPairs + 1))
      << "a client was accepted during the back-off";

  // After the retry interval it is served, byte-exact.
  ExpectEcho(patient.get(), 700, "client that arrived during the back-off");
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        report = Ask('s');
        return report.pairs_closed - baseline.pairs_closed == kHeldPairs + 2 ||
               report.error[0] != '\0';
      },
      seconds(10)));
  ASSERT_EQ(report.error[0], '\0') << report.error;
  EXPECT_EQ(report.pairs_open, 0u);
  EXPECT_EQ(report.backend_fd_exhausted, 1u);
  EXPECT_EQ(report.connect_failures - baseline.connect_failures, 1u);
  // accept4 wants a free fd before it looks at the queue, so the accept
  // tried right after the unlucky one may fail too; it pauses on the same
  // timer. Nothing else ran out.
  EXPECT_LE(report.accept_fd_exhausted, 1u);
  EXPECT_EQ(report.connect_failed_closes, 1u);
  EXPECT_EQ(report.connect_failed_error, EMFILE);
  EXPECT_NE(std::string(report.connect_failed_detail).find("socket: Too many open files"),
            std::string::npos)
      << report.connect_failed_detail;
  EXPECT_EQ(report.open_fds, baseline.open_fds) << "fds leaked";
  EXPECT_TRUE(backend.ok());
  EXPECT_TRUE(warm_backend.ok());

  char quit = 'q';
  ASSERT_EQ(::write(command_.get(), &quit, 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child_, &status, 0), child_);
  child_ = 0;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace zrelay
