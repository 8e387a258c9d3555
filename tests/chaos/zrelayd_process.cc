#include "tests/chaos/zrelayd_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace zrelay::chaos {

std::string FindZrelayd(const char* argv0) {
  for (const char* var : {"TEST_SRCDIR", "RUNFILES_DIR"}) {
    if (const char* dir = std::getenv(var)) {
      std::string path = std::string(dir) + "/zrelay/tools/zrelayd";
      if (::access(path.c_str(), X_OK) == 0) return path;
    }
  }
  return std::string(argv0 ? argv0 : "") + ".runfiles/zrelay/tools/zrelayd";
}

Result<FdCensus> TakeFdCensus(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Error::FromErrno(errno, "open " + dir);
  FdCensus census;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string path = dir + "/" + e->d_name;
    char target[256];
    ssize_t n = ::readlink(path.c_str(), target, sizeof(target) - 1);
    if (n < 0) continue;  // closed while we looked
    std::string link(target, static_cast<size_t>(n));
    ++census.total;
    if (link.rfind("socket:", 0) == 0) {
      ++census.by_kind["socket"];
    } else if (link.rfind("pipe:", 0) == 0) {
      ++census.by_kind["pipe"];
      FdCensus::Pipe& pipe = census.pipes[link];
      ++pipe.ends;
      // Opening /proc/PID/fd/N of a pipe opens the pipe itself; its read
      // side says how many bytes sit in it.
      int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      int queued = 0;
      if (fd >= 0 && ::ioctl(fd, FIONREAD, &queued) == 0 && queued > 0) {
        pipe.bytes = static_cast<uint64_t>(queued);
      }
      if (fd >= 0) ::close(fd);
    } else {
      ++census.by_kind[link];
    }
  }
  ::closedir(d);
  return census;
}

std::string NonPipeDifference(const FdCensus& baseline, const FdCensus& now) {
  std::map<std::string, std::pair<int, int>> both;
  for (const auto& [kind, n] : baseline.by_kind) both[kind].first = n;
  for (const auto& [kind, n] : now.by_kind) both[kind].second = n;
  std::string out;
  for (const auto& [kind, counts] : both) {
    if (kind == "pipe" || counts.first == counts.second) continue;
    if (!out.empty()) out += ", ";
    out += kind + " " + std::to_string(counts.first) + " -> " + std::to_string(counts.second);
  }
  return out;
}

bool ParseCloseLine(const std::string& line, CloseLine* out) {
  if (line.rfind("zrelayd: ", 0) != 0) return false;
  size_t counts = line.find(" bytes_up=");
  size_t cause_at = line.find(" cause=");
  if (counts == std::string::npos || cause_at == std::string::npos) return false;
  char cause[32];
  unsigned long long up = 0, down = 0;
  if (std::sscanf(line.c_str() + counts, " bytes_up=%llu bytes_down=%llu", &up, &down) != 2 ||
      std::sscanf(line.c_str() + cause_at, " cause=%31[a-z-]", cause) != 1) {
    return false;
  }
  out->cause = cause;
  out->up = up;
  out->down = down;
  out->text = line;
  return true;
}

std::map<std::string, uint64_t> ParseTotals(const std::string& line) {
  std::map<std::string, uint64_t> totals;
  size_t at = line.find("totals: ");
  if (at == std::string::npos) return totals;
  // "name N" items, separated by commas and parentheses.
  std::string item;
  for (size_t i = at + 8; i <= line.size(); ++i) {
    if (i < line.size() && line[i] != ',' && line[i] != '(' && line[i] != ')') {
      item += line[i];
      continue;
    }
    size_t first = item.find_first_not_of(' ');
    size_t last = item.find_last_not_of(' ');
    size_t space = last == std::string::npos ? std::string::npos : item.rfind(' ', last);
    if (space != std::string::npos && space > first) {
      std::string number = item.substr(space + 1, last - space);
      char* end = nullptr;
      unsigned long long n = std::strtoull(number.c_str(), &end, 10);
      if (*end == '\0') totals[item.substr(first, space - first)] = n;
    }
    item.clear();
  }
  return totals;
}

Result<std::unique_ptr<ZrelaydProcess>> ZrelaydProcess::Start(
    const std::string& zrelayd, const std::vector<std::string>& args,
    const std::vector<std::string>& wrapper) {
  if (::access(zrelayd.c_str(), X_OK) != 0) return Error::FromErrno(errno, "zrelayd at " + zrelayd);
  std::vector<std::string> argv = wrapper;
  argv.push_back(zrelayd);
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0) return Error::FromErrno(errno, "pipe for zrelayd's stderr");
  pid_t pid = ::fork();
  if (pid < 0) return Error::FromErrno(errno, "fork zrelayd");
  if (pid == 0) {
    ::dup2(err[1], STDERR_FILENO);
    ::execvp(cargv[0], cargv.data());
    std::fprintf(stderr, "exec %s: %s\n", cargv[0], std::strerror(errno));
    _exit(127);
  }
  ::close(err[1]);
  std::unique_ptr<ZrelaydProcess> p(new ZrelaydProcess());
  p->pid_ = pid;
  p->reader_ = std::thread([proc = p.get(), fd = err[0]] { proc->ReadStderr(fd); });

  // Under ASan zrelayd starts slowly; the banner still comes within seconds.
  if (!p->WaitForLine("listening on ", seconds(30))) {
    std::string text;
    for (const std::string& l : p->Lines()) text += l + "\n";
    return Error::Invalid("zrelayd printed no banner: " + text);
  }
  for (const std::string& l : p->Lines()) {
    size_t at = l.find("listening on ");
    if (at == std::string::npos) continue;
    at += 13;
    auto address = Address::Parse(l.substr(at, l.find(", backend", at) - at));
    if (!address.ok()) return address.error();
    p->address_ = address.value();
  }
  return p;
}

ZrelaydProcess::~ZrelaydProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (reader_.joinable()) reader_.join();
}

void ZrelaydProcess::ReadStderr(int fd) {
  std::string partial;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    partial.append(buf, static_cast<size_t>(n));
    std::vector<std::string> complete;
    for (size_t nl; (nl = partial.find('\n')) != std::string::npos;) {
      complete.push_back(partial.substr(0, nl));
      partial.erase(0, nl + 1);
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (std::string& l : complete) lines_.push_back(std::move(l));
    changed_.notify_all();
  }
  ::close(fd);
  std::lock_guard<std::mutex> lock(mu_);
  if (!partial.empty()) lines_.push_back(partial);
  eof_ = true;
  changed_.notify_all();
}

bool ZrelaydProcess::WaitForLine(const std::string& needle, Duration deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  size_t seen = 0;
  return changed_.wait_for(lock, deadline, [&] {
    for (; seen < lines_.size(); ++seen) {
      if (lines_[seen].find(needle) != std::string::npos) return true;
    }
    return eof_;
  }) && !eof_;
}

Result<int> ZrelaydProcess::Stop(Duration deadline) {
  if (pid_ <= 0) return Error::Invalid("zrelayd already stopped");
  ::kill(pid_, SIGTERM);
  TimePoint until = Clock::now() + deadline;
  int status = 0;
  pid_t done = 0;
  while ((done = ::waitpid(pid_, &status, WNOHANG)) == 0 && Clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  if (done != pid_) {
    return Error::FromErrno(
        ETIMEDOUT, "zrelayd (pid " + std::to_string(pid_) + ") did not exit after SIGTERM");
  }
  pid_ = -1;
  reader_.join();  // the pipe hits EOF once zrelayd (and prlimit) are gone
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<std::string> ZrelaydProcess::Lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

std::string ZrelaydProcess::TotalsLine() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& l : lines_) {
    if (l.rfind("zrelayd: totals: ", 0) == 0) return l;
  }
  return {};
}

std::string ZrelaydProcess::SanitizerReport() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string report;
  bool in_report = false;
  for (const std::string& l : lines_) {
    bool start = l.find("ERROR: AddressSanitizer") != std::string::npos ||
                 l.find("ERROR: LeakSanitizer") != std::string::npos ||
                 l.find("runtime error:") != std::string::npos;
    in_report = in_report || start;
    if (in_report) report += l + "\n";
  }
  return report;
}

}  // namespace zrelay::chaos
