// Log sinks: a file's lines timestamped, whole and in order from any number
// of threads; reopened after logrotate renamed the file, without a line lost
// or split; kept when the reopen fails.
#include "tools/log/log_sink.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/clock.h"
#include "tests/tools/log_test_util.h"
#include "tools/log/log.h"

namespace zrelay {
namespace {

using testing::Lines;
using testing::ReadFile;
using testing::Unstamped;

// Writer `t`'s line `m`: its length varies, so lines of every size race.
std::string Payload(int t, int m) {
  return "writer " + std::to_string(t) + " line " + std::to_string(m) + " " +
         std::string(static_cast<size_t>((t * 131 + m * 17) % 300), static_cast<char>('a' + t));
}

// Checks that `lines` hold every writer's lines whole and, per writer, in
// order with none missing or repeated: `per_writer` of each of `writers`.
void ExpectEveryLineOnce(const std::vector<std::string>& lines, int writers, int per_writer) {
  std::vector<int> next(static_cast<size_t>(writers), 0);
  for (const std::string& line : lines) {
    const std::string text = Unstamped(line);
    int t = -1, m = -1;
    ASSERT_EQ(std::sscanf(text.c_str(), "writer %d line %d ", &t, &m), 2) << line;
    ASSERT_TRUE(t >= 0 && t < writers) << line;
    ASSERT_EQ(m, next[static_cast<size_t>(t)]) << "writer " << t << ": " << line;
    ASSERT_EQ(text, Payload(t, m));
    ++next[static_cast<size_t>(t)];
  }
  for (int t = 0; t < writers; ++t) EXPECT_EQ(next[static_cast<size_t>(t)], per_writer) << t;
}

TEST(Iso8601Utc, MillisecondsAndZ) {
  tm when{};
  when.tm_year = 2026 - 1900;
  when.tm_mon = 11;
  when.tm_mday = 1;
  when.tm_hour = 3;
  when.tm_min = 4;
  when.tm_sec = 5;
  auto at = std::chrono::system_clock::from_time_t(::timegm(&when));
  EXPECT_EQ(Iso8601Utc(at + milliseconds(123)), "2026-12-01T03:04:05.123Z");
  EXPECT_EQ(Iso8601Utc(at + milliseconds(7)), "2026-12-01T03:04:05.007Z");
  EXPECT_EQ(Iso8601Utc(at + milliseconds(999) + microseconds(999)), "2026-12-01T03:04:05.999Z");
  EXPECT_EQ(Iso8601Utc(std::chrono::system_clock::time_point()), "1970-01-01T00:00:00.000Z");
}

TEST(LogSink, FileLinesAreAppendedWithTheTimeTheyWereWritten) {
  const std::string path = testing::LogTestDir("append") + "/zrelayd.log";
  std::ofstream(path) << "a line from before\n";
  auto sink = LogSink::OpenFile(path, "log file");
  ASSERT_TRUE(sink.ok()) << sink.error().message();
  const std::string before = Iso8601Utc(std::chrono::system_clock::now());
  sink.value()->Write("first");
  sink.value()->Write("second, \"quoted\"");
  const std::string after = Iso8601Utc(std::chrono::system_clock::now());

  std::vector<std::string> lines = Lines(ReadFile(path));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "a line from before");
  EXPECT_EQ(Unstamped(lines[1]), "first");
  EXPECT_EQ(Unstamped(lines[2]), "second, \"quoted\"");
  // The stamp is the wall clock's (UTC) at the write; the format sorts as text.
  const std::string stamp = lines[1].substr(0, before.size());
  EXPECT_LE(before, stamp);
  EXPECT_LE(stamp, after);
}

// Client addresses and server names: a new file is 0640 (less the umask).
TEST(LogSink, ANewFileIsNotForOtherUsers) {
  const std::string path = testing::LogTestDir("mode") + "/access.log";
  auto sink = LogSink::OpenFile(path, "access log");
  ASSERT_TRUE(sink.ok()) << sink.error().message();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0007, 0u);
  EXPECT_EQ(st.st_mode & 0600, 0600u);
}

TEST(LogSink, StderrLinesSayZrelaydAndHaveNoTimestamp) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  int saved = ::dup(STDERR_FILENO);
  ::dup2(pipe_fds[1], STDERR_FILENO);
  LogSink::Stderr()->Write("listener web: listening on 127.0.0.1:8080");
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(pipe_fds[1]);
  char buf[256];
  ssize_t n = ::read(pipe_fds[0], buf, sizeof(buf));
  ::close(pipe_fds[0]);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)),
            "zrelayd: listener web: listening on 127.0.0.1:8080\n");
}

TEST(LogSink, AFileThatCannotBeOpenedIsNamed) {
  const std::string path = testing::LogTestDir("missing") + "/no/such/dir/zrelayd.log";
  auto sink = LogSink::OpenFile(path, "access log");
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.error().message(), "access log '" + path + "': No such file or directory");
}

// N threads x M lines of assorted lengths into one file: every line whole,
// each thread's in its order.
TEST(LogSink, ConcurrentWritersNeverInterleave) {
  constexpr int kWriters = 8;
  constexpr int kLines = 2000;
  const std::string path = testing::LogTestDir("concurrent") + "/zrelayd.log";
  auto sink = LogSink::OpenFile(path, "log file");
  ASSERT_TRUE(sink.ok()) << sink.error().message();
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      for (int m = 0; m < kLines; ++m) sink.value()->Write(Payload(t, m));
    });
  }
  for (std::thread& w : writers) w.join();
  std::vector<std::string> lines = Lines(ReadFile(path));
  EXPECT_EQ(lines.size(), static_cast<size_t>(kWriters * kLines));
  ExpectEveryLineOnce(lines, kWriters, kLines);
}

// logrotate's way: rename the file, then SIGUSR1 (here: Reopen()), while
// writers keep writing. Every line lands whole in the old or the new file;
// the ones written after the reopen in the new file.
TEST(LogSink, ReopenAfterRenameLosesAndSplitsNoLine) {
  constexpr int kWriters = 4;
  constexpr int kLines = 3000;
  constexpr int kRotations = 5;
  const std::string dir = testing::LogTestDir("rotate");
  const std::string path = dir + "/zrelayd.log";
  auto sink = LogSink::OpenFile(path, "log file");
  ASSERT_TRUE(sink.ok()) << sink.error().message();
  std::atomic<int> written{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      for (int m = 0; m < kLines; ++m) {
        sink.value()->Write(Payload(t, m));
        written.fetch_add(1);
      }
    });
  }
  std::vector<std::string> rotated;
  for (int r = 0; r < kRotations; ++r) {
    // Rotate only once lines are flowing, spread over the run.
    const int due = (r + 1) * kWriters * kLines / (kRotations + 2);
    for (int i = 0; i < 10000 && written.load() < due; ++i) ::usleep(1000);
    rotated.push_back(path + "." + std::to_string(r));
    ASSERT_EQ(::rename(path.c_str(), rotated.back().c_str()), 0);
    Status reopened = sink.value()->Reopen();
    ASSERT_TRUE(reopened.ok()) << reopened.error().message();
  }
  for (std::thread& w : writers) w.join();
  sink.value()->Write("after the last reopen");

  std::vector<std::string> all;
  for (const std::string& file : rotated) {
    std::vector<std::string> lines = Lines(ReadFile(file));
    all.insert(all.end(), lines.begin(), lines.end());
  }
  std::vector<std::string> current = Lines(ReadFile(path));
  ASSERT_FALSE(current.empty());
  EXPECT_EQ(Unstamped(current.back()), "after the last reopen");
  all.insert(all.end(), current.begin(), current.end() - 1);
  EXPECT_EQ(all.size(), static_cast<size_t>(kWriters * kLines));
  ExpectEveryLineOnce(all, kWriters, kLines);
}

// The directory is gone (renamed away): the reopen fails, says which file,
// and the lines keep going to the file the sink had.
TEST(LogSink, FailedReopenKeepsWritingToTheOldFile) {
  const std::string dir = testing::LogTestDir("reopen_fails");
  const std::string logs = dir + "/logs";
  ASSERT_EQ(::mkdir(logs.c_str(), 0700), 0);
  auto sink = LogSink::OpenFile(logs + "/zrelayd.log", "log file");
  ASSERT_TRUE(sink.ok()) << sink.error().message();
  sink.value()->Write("before");
  ASSERT_EQ(::rename(logs.c_str(), (dir + "/moved").c_str()), 0);
  Status reopened = sink.value()->Reopen();
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.error().message(),
            "reopen log file '" + logs + "/zrelayd.log': No such file or directory");
  sink.value()->Write("after");
  std::vector<std::string> lines = Lines(ReadFile(dir + "/moved/zrelayd.log"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(Unstamped(lines[0]), "before");
  EXPECT_EQ(Unstamped(lines[1]), "after");
}

TEST(LogSink, StderrHasNothingToReopen) { EXPECT_TRUE(LogSink::Stderr()->Reopen().ok()); }

// zrelayd's own log, Log(): to the file once LogToFile() opened it, and to
// the new file after ReopenLogFile().
TEST(OwnLog, GoesToTheFileAndIsReopened) {
  const std::string dir = testing::LogTestDir("own");
  const std::string path = dir + "/zrelayd.log";
  Status opened = LogToFile(path);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  Logf("listener %s: listening on %s", "web", "127.0.0.1:8080");
  ASSERT_EQ(::rename(path.c_str(), (path + ".1").c_str()), 0);
  Status reopened = ReopenLogFile();
  ASSERT_TRUE(reopened.ok()) << reopened.error().message();
  Log("after the reopen");
  std::vector<std::string> old_lines = Lines(ReadFile(path + ".1"));
  std::vector<std::string> new_lines = Lines(ReadFile(path));
  ASSERT_EQ(old_lines.size(), 1u);
  EXPECT_EQ(Unstamped(old_lines[0]), "listener web: listening on 127.0.0.1:8080");
  ASSERT_EQ(new_lines.size(), 1u);
  EXPECT_EQ(Unstamped(new_lines[0]), "after the reopen");
  EXPECT_EQ(LogToFile(dir + "/none/zrelayd.log").error().message(),
            "log file '" + dir + "/none/zrelayd.log': No such file or directory");
}

}  // namespace
}  // namespace zrelay
