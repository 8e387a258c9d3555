// ZR_CHECK stays on in every build: these death tests run in the `-c opt`
// build too, where NDEBUG has compiled every assert() out. Each engine
// invariant below used to be an assert, so a violation went unnoticed in
// the optimized build (an epoll_wait error other than EINTR spun silently).
#include "engine/check.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "engine/event_loop.h"
#include "engine/result.h"
#include "engine/timer_wheel.h"
#include "engine/worker_pool.h"

namespace zrelay {
namespace {

class CheckDeathTest : public ::testing::Test {
 protected:
  // The worker pool case has threads: re-run the binary rather than fork.
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(CheckDeathTest, PassingCheckDoesNothingAndSkipsItsMessage) {
  int evaluated = 0;
  auto count = [&] { return ++evaluated; };
  ZR_CHECK(1 + 1 == 2);
  ZR_CHECK(evaluated == 0, "never printed %d", count());
  EXPECT_EQ(evaluated, 0) << "message arguments are evaluated only on failure";
}

TEST_F(CheckDeathTest, FailingCheckPrintsWhereWhatAndWhyThenAborts) {
  const int answer = 41;
  EXPECT_DEATH(ZR_CHECK(answer == 42, "answer is %d", answer),
               "zrelay: CHECK failed at tests/engine/check_test.cc:[0-9]+: answer == 42: "
               "answer is 41");
  EXPECT_DEATH(ZR_CHECK(answer > 100), "CHECK failed at .*check_test.cc:[0-9]+: answer > 100\n");
}

TEST_F(CheckDeathTest, ChecksStayOnWithoutDebugAsserts) {
#ifdef NDEBUG
  RecordProperty("ndebug", 1);  // the -c opt run: assert() is off here
#endif
  EXPECT_EXIT(ZR_CHECK(false), ::testing::KilledBySignal(SIGABRT), "CHECK failed");
}

// The process's epoll instance (the one loop's), found in /proc/self/fd.
int OpenEpollFd() {
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (target == "anon_inode:[eventpoll]") return std::stoi(entry.path().filename().string());
  }
  return -1;
}

TEST_F(CheckDeathTest, BrokenEpollFdAbortsInsteadOfSpinning) {
  EXPECT_DEATH(
      {
        auto loop = EventLoop::Create({IoBackend::kEpoll});
        ::close(OpenEpollFd());
        loop.value()->RunOnce(milliseconds(10));
      },
      "epoll_wait on epoll fd [0-9]+: Bad file descriptor");
}

TEST_F(CheckDeathTest, ValueOfAFailedResultNamesItsError) {
  Result<int> failed = Error::Invalid("port 'x' is not a number");
  EXPECT_DEATH((void)failed.value(), "value\\(\\) of a failed Result: port 'x' is not a number");
  EXPECT_DEATH((void)Status::Ok().error(), "error\\(\\) of an ok Status");
}

struct NoopHandler : TimerHandler {
  void OnTimer(Timer&) override {}
};

TEST_F(CheckDeathTest, TimerArmedOnTwoWheels) {
  EXPECT_DEATH(
      {
        NoopHandler handler;
        Timer timer(&handler);
        TimerWheel first(Clock::now());
        TimerWheel second(Clock::now());
        first.Arm(timer, Clock::now(), seconds(1));
        second.Cancel(timer);
      },
      "timer armed on another wheel");
}

TEST_F(CheckDeathTest, RunOnEachFromAWorkerWouldDeadlock) {
  EXPECT_DEATH(
      {
        auto pool = WorkerPool::Start({.workers = 1});
        WorkerPool& p = *pool.value();
        p.RunOnEach([&](size_t) { p.RunOnEach([](size_t) {}); });
      },
      "RunOnEach from worker 0 would deadlock");
}

}  // namespace
}  // namespace zrelay
