// Regression: a listener that runs out of fds must not busy-loop on EMFILE
// (the queue stays readable while accept4 keeps failing) and must resume
// accepting once fds are free again.
//
// Runs the listener in a forked child with a small RLIMIT_NOFILE so the
// limit cannot hurt the test runner; the child reports through a pipe.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/listener.h"
#include "engine/socket.h"
#include "engine/worker_pool.h"
#include "tests/engine/fd_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

constexpr int kWorkers = 2;
constexpr int kConnections = 100;        // far more than the child's free fds
constexpr int kFreeFds = 10;             // fd numbers left for accepted connections
const Duration kExhaustionWindow = seconds(1);

struct ChildReport {
  int ok = 0;                     // 1 when every step below completed
  char error[128] = {};           // else what went wrong
  uint64_t accepted_while_exhausted = 0;
  uint64_t fd_exhausted_events = 0;  // retries during the window
  double cpu_seconds_in_window = 0;  // user + system, all threads
  uint64_t accepted_after_release = 0;
};

// Holds accepted fds (to exhaust the table) until told to let go.
struct HoldingHandler : AcceptHandler {
  void OnAccept(size_t worker, UniqueFd fd, const Address&) override {
    if (hold.load()) held[worker].push_back(std::move(fd));
  }
  std::atomic<bool> hold{true};
  std::vector<UniqueFd> held[kWorkers];  // touched only by its worker thread
};

double CpuSeconds() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// The child: no gtest here, just steps that fill `report`.
void ChildMain(int report_fd, int port_fd, int go_fd) {
  ChildReport report;
  auto fail = [&](const std::string& why) {
    std::snprintf(report.error, sizeof(report.error), "%s", why.c_str());
    (void)!::write(report_fd, &report, sizeof(report));
    ::_exit(1);
  };
  WorkerPoolOptions pool_options;
  pool_options.workers = kWorkers;
  auto pool = WorkerPool::Start(pool_options);
  if (!pool) fail(pool.error().message());
  std::string why;
  if (!testing::PrimeBackOffPath(**pool, &why)) fail(why);
  HoldingHandler handler;
  ListenerOptions options;
  options.address = testing::Loopback();
  options.fd_exhausted_retry = milliseconds(100);
  auto listener = Listener::Start(**pool, options, &handler);
  if (!listener) fail(listener.error().message());

  // Room for a few accepts, then EMFILE.
  struct rlimit limit {};
  limit.rlim_cur = limit.rlim_max = testing::LimitLeavingFreeFds(kFreeFds);
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) fail("setrlimit failed");
  const int port = (*listener)->local_address().port();
  (void)!::write(port_fd, &port, sizeof(port));

  // Wait for the parent to have queued every connection.
  struct pollfd p {go_fd, POLLIN, 0};
  char go;
  if (::poll(&p, 1, 10000) != 1 || ::read(go_fd, &go, 1) != 1) fail("parent never said go");
  if (!testing::WaitFor([&] { return (*listener)->Stats().fd_exhausted > 0; }, seconds(5))) {
    fail("fds never ran out");
  }

  // The window: fds are exhausted and the queue is non-empty the whole time.
  const ListenerStats before = (*listener)->Stats();
  const double cpu_before = CpuSeconds();
  std::this_thread::sleep_for(kExhaustionWindow);
  const double cpu_after = CpuSeconds();
  const ListenerStats after = (*listener)->Stats();
  report.cpu_seconds_in_window = cpu_after - cpu_before;
  report.fd_exhausted_events = after.fd_exhausted - before.fd_exhausted;
  report.accepted_while_exhausted = after.accepted;

  // Free the fds (on each worker's thread) and stop holding new ones: the
  // retry timer must find the queue and drain it.
  handler.hold = false;
  (*pool)->RunOnEach([&](size_t worker) { handler.held[worker].clear(); });
  if (!testing::WaitFor([&] { return (*listener)->Stats().accepted >= kConnections; },
                        seconds(5))) {
    report.accepted_after_release = (*listener)->Stats().accepted;
    fail("listener did not resume after fds were freed");
  }
  report.accepted_after_release = (*listener)->Stats().accepted;
  (*listener)->Stop();
  (*pool)->Stop();
  report.ok = 1;
  (void)!::write(report_fd, &report, sizeof(report));
  ::_exit(0);
}

// Reads exactly `len` bytes within `deadline`; false on timeout or EOF.
bool ReadWithin(int fd, void* buf, size_t len, Duration deadline) {
  const TimePoint end = Clock::now() + deadline;
  size_t done = 0;
  while (done < len) {
    const auto left = std::chrono::duration_cast<milliseconds>(end - Clock::now()).count();
    struct pollfd p {fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) != 1) return false;
    ssize_t n = ::read(fd, static_cast<char*>(buf) + done, len - done);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

TEST(ListenerEmfileTest, NoBusyLoopWhileOutOfFdsAndRecoversAfter) {
  int report_pipe[2], port_pipe[2], go_pipe[2];
  ASSERT_EQ(::pipe2(report_pipe, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(port_pipe, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(go_pipe, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0) << std::strerror(errno);
  if (child == 0) {
    ::close(report_pipe[0]);
    ::close(port_pipe[0]);
    ::close(go_pipe[1]);
    ChildMain(report_pipe[1], port_pipe[1], go_pipe[0]);
  }
  ::close(report_pipe[1]);
  ::close(port_pipe[1]);
  ::close(go_pipe[0]);
  UniqueFd report_fd(report_pipe[0]), port_fd(port_pipe[0]), go_fd(go_pipe[1]);
  // Never leave the child behind, whatever fails below.
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid <= 0) return;  // already reaped (never kill(-1, ...))
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reaper{child};

  int port = 0;
  ChildReport report;
  if (!ReadWithin(port_fd.get(), &port, sizeof(port), seconds(10))) {
    // The child may have failed before binding: show its report.
    ASSERT_TRUE(ReadWithin(report_fd.get(), &report, sizeof(report), seconds(1)));
    FAIL() << "child: " << report.error;
  }
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kConnections; ++i) {
    auto fd = testing::BlockingConnect(testing::Loopback(AF_INET, port));
    ASSERT_TRUE(fd.ok()) << fd.error().message();
    clients.push_back(std::move(fd).value());
  }
  ASSERT_EQ(::write(go_fd.get(), "g", 1), 1);

  ASSERT_TRUE(ReadWithin(report_fd.get(), &report, sizeof(report), seconds(20)))
      << "no report from the child";
  ASSERT_EQ(report.ok, 1) << "child: " << report.error
                          << " (accepted " << report.accepted_after_release << ")";
  // Fewer accepted than queued while fds were exhausted: the window was real.
  EXPECT_LT(report.accepted_while_exhausted, static_cast<uint64_t>(kConnections));
  // Retries come from the 100 ms timer: about 10 per worker per second. A
  // busy loop would be hundreds of thousands, and burn a whole core.
  EXPECT_GE(report.fd_exhausted_events, 1u);
  EXPECT_LE(report.fd_exhausted_events, 2u * kWorkers * 10u + 4u);
  EXPECT_LT(report.cpu_seconds_in_window, 0.2)
      << "the child burned CPU while it could not accept";
  EXPECT_EQ(report.accepted_after_release, static_cast<uint64_t>(kConnections));
  RecordProperty("cpu_ms_in_1s_exhaustion",
                 static_cast<int>(report.cpu_seconds_in_window * 1000));
  std::printf("EMFILE window: cpu %.4f s over %lld ms, %llu retries, %llu accepted before release\n",
              report.cpu_seconds_in_window,
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(kExhaustionWindow).count()),
              static_cast<unsigned long long>(report.fd_exhausted_events),
              static_cast<unsigned long long>(report.accepted_while_exhausted));

  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  reaper.pid = 0;  // reaped
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace zrelay
