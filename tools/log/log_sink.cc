#include "tools/log/log_sink.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace zrelay {
namespace {

constexpr int kOpenFlags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC;
// Client addresses and server names are not for every local user to read.
constexpr mode_t kFileMode = 0640;

constexpr size_t kTimestampSize = sizeof("2026-12-01T03:04:05.123Z") - 1;

// Iso8601Utc() without an allocation of its own: the timestamp is in front
// of every line of a file.
void FormatIso8601Utc(std::chrono::system_clock::time_point when, char (&text)[32]) {
  using namespace std::chrono;
  const auto since_epoch = duration_cast<milliseconds>(when.time_since_epoch());
  const time_t secs = static_cast<time_t>(floor<seconds>(since_epoch).count());
  const int millis = static_cast<int>(since_epoch.count() - secs * 1000LL);
  tm utc{};
  ::gmtime_r(&secs, &utc);
  size_t n = std::strftime(text, sizeof(text) - 5, "%Y-%m-%dT%H:%M:%S", &utc);
  text[n++] = '.';
  text[n++] = static_cast<char>('0' + millis / 100);
  text[n++] = static_cast<char>('0' + millis / 10 % 10);
  text[n++] = static_cast<char>('0' + millis % 10);
  text[n++] = 'Z';
  text[n] = '\0';
}

}  // namespace

std::string Iso8601Utc(std::chrono::system_clock::time_point when) {
  char text[32];
  FormatIso8601Utc(when, text);
  return text;
}

std::unique_ptr<LogSink> LogSink::Stderr() {
  return std::unique_ptr<LogSink>(new LogSink(STDERR_FILENO, "", "stderr"));
}

Result<std::unique_ptr<LogSink>> LogSink::OpenFile(const std::string& path, std::string what) {
  int fd = ::open(path.c_str(), kOpenFlags, kFileMode);
  if (fd < 0) return Error::FromErrno(errno, what + " '" + path + "'");
  return std::unique_ptr<LogSink>(new LogSink(fd, path, std::move(what)));
}

LogSink::~LogSink() {
  if (!is_stderr()) ::close(fd_);
}

void LogSink::Write(std::string_view line) const {
  std::string text;
  text.reserve(kTimestampSize + 1 + line.size() + 1);
  if (is_stderr()) {
    text.append("zrelayd: ");
  } else {
    char stamp[32];
    FormatIso8601Utc(std::chrono::system_clock::now(), stamp);
    text.append(stamp, kTimestampSize).push_back(' ');
  }
  text.append(line);
  text.push_back('\n');
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere left to say it
    done += static_cast<size_t>(n);
  }
}

Status LogSink::Reopen() {
  if (is_stderr()) return Status::Ok();
  int fresh = ::open(path_.c_str(), kOpenFlags, kFileMode);
  if (fresh < 0) return Error::FromErrno(errno, "reopen " + what_ + " '" + path_ + "'");
  // dup3 replaces fd_ atomically: a write in progress finishes in the old
  // file, the next one goes to the new file.
  int replaced = ::dup3(fresh, fd_, O_CLOEXEC);
  int err = errno;
  ::close(fresh);
  if (replaced < 0) return Error::FromErrno(err, "reopen " + what_ + " '" + path_ + "'");
  return Status::Ok();
}

}  // namespace zrelay
