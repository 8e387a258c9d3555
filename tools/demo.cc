// The zrelay demo: what splice saves, in one command.
//
// Starts a built-in backend (a sink), runs zrelayd in front of it in splice
// mode and then in copy mode, pushes the same bytes through each, and prints
// throughput and the relay's CPU seconds per GiB (read from /proc), then a
// one-line verdict. Loopback only; every step has a deadline.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "demo: %s\n", what.c_str());
  std::exit(1);
}

// The built-in backend: accepts one connection at a time and discards what
// it reads, counting bytes.
class Sink {
 public:
  Sink() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      Die(std::string("backend: cannot listen on 127.0.0.1: ") + std::strerror(errno));
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Sink() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  int port() const { return port_; }
  uint64_t received() const { return received_.load(); }
  // Waits until `bytes` arrived in total; false after `timeout`.
  bool WaitFor(uint64_t bytes, std::chrono::seconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (received_.load() < bytes) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

 private:
  void Serve() {
    std::vector<char> buf(1 << 20);
    for (;;) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      for (;;) {
        ssize_t n = ::recv(c, buf.data(), buf.size(), 0);
        if (n <= 0) break;
        received_ += static_cast<uint64_t>(n);
      }
      ::close(c);
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<uint64_t> received_{0};
  std::thread thread_;
};

struct Relay {
  pid_t pid = -1;
  int port = 0;
};

std::string ZrelaydPath() {
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) Die("cannot find my own binary");
  exe[n] = '\0';
  std::string dir(exe);
  dir.resize(dir.rfind('/'));
  for (const std::string& candidate : {dir + "/zrelayd", dir + "/demo.runfiles/zrelay/tools/zrelayd"}) {
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  Die("zrelayd not found next to " + std::string(exe) + " (build //tools:zrelayd)");
}

// Starts zrelayd on an ephemeral port and reads the port from its banner.
Relay StartRelay(const std::string& mode, int backend_port) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) Die("pipe2 failed");
  std::string binary = ZrelaydPath();
  std::string backend = "127.0.0.1:" + std::to_string(backend_port);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], STDERR_FILENO);
    ::execl(binary.c_str(), "zrelayd", "--listen", "127.0.0.1:0", "--backend", backend.c_str(),
            "--mode", mode.c_str(), "--workers", "1", "--drain-grace", "1s",
            static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(out[1]);
  std::string banner;
  char c;
  // zrelayd logs a line or two (its fd limit) before the one that says where
  // it listens: read up to the end of that one, or to EOF if it failed.
  auto has_banner = [&] {
    size_t at = banner.find("listening on ");
    return at != std::string::npos && banner.find('\n', at) != std::string::npos;
  };
  while (!has_banner() && ::read(out[0], &c, 1) == 1) banner += c;
  ::close(out[0]);
  size_t at = banner.find("listening on 127.0.0.1:");
  if (at == std::string::npos) Die("zrelayd did not start: " + banner);
  return Relay{pid, std::atoi(banner.c_str() + at + std::strlen("listening on 127.0.0.1:"))};
}

// User + system CPU seconds of a process, all threads (/proc/PID/stat).
double CpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct Run {
  std::string mode;
  double seconds = 0;
  double cpu = 0;
  uint64_t bytes = 0;
  double gbit() const { return bytes * 8 / seconds / 1e9; }
  double cpu_per_gib() const { return cpu / (static_cast<double>(bytes) / (1ULL << 30)); }
};

Run Push(const std::string& mode, Sink& sink, uint64_t bytes) {
  Relay relay = StartRelay(mode, sink.port());
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(relay.port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Die("connect to zrelayd: " + std::string(std::strerror(errno)));
  }
  std::vector<char> chunk(1 << 20, 'z');
  uint64_t base = sink.received();
  double cpu0 = CpuSeconds(relay.pid);
  auto t0 = Clock::now();
  uint64_t sent = 0;
  while (sent < bytes) {
    ssize_t n = ::send(fd, chunk.data(), std::min<uint64_t>(chunk.size(), bytes - sent), MSG_NOSIGNAL);
    if (n <= 0) Die("send through zrelayd failed: " + std::string(std::strerror(errno)));
    sent += static_cast<uint64_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  if (!sink.WaitFor(base + bytes, std::chrono::seconds(120))) Die("the backend did not get every byte");
  Run run{mode, std::chrono::duration<double>(Clock::now() - t0).count(), 0, bytes};
  run.cpu = CpuSeconds(relay.pid) - cpu0;
  ::close(fd);
  ::kill(relay.pid, SIGTERM);
  int status = 0;
  ::waitpid(relay.pid, &status, 0);
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t gib = 4;
  if (argc > 1) gib = std::strtoull(argv[1], nullptr, 10);
  if (gib == 0 || gib > 64) {
    std::fprintf(stderr, "usage: demo [GiB per mode, 1..64, default 4]\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  Sink sink;
  std::printf("zrelay demo: %llu GiB per mode, client -> zrelayd (1 worker) -> backend, loopback\n\n",
              (unsigned long long)gib);
  std::printf("  %-7s %10s %10s %12s %14s\n", "mode", "GiB", "Gbit/s", "relay CPU s", "CPU s per GiB");
  std::vector<Run> runs;
  for (const char* mode : {"splice", "copy"}) {
    runs.push_back(Push(mode, sink, gib << 30));
    const Run& r = runs.back();
    std::printf("  %-7s %10.2f %10.2f %12.2f %14.3f\n", r.mode.c_str(),
                static_cast<double>(r.bytes) / (1ULL << 30), r.gbit(), r.cpu, r.cpu_per_gib());
    std::fflush(stdout);
  }
  const Run& splice = runs[0];
  const Run& copy = runs[1];
  double cpu_ratio = splice.cpu_per_gib() / copy.cpu_per_gib();
  std::printf("\nverdict: splice moved %.2fx copy's throughput at %.0f%% of its CPU per GiB "
              "(%.0f%% of the relay's CPU saved by not copying through user space).\n",
              splice.gbit() / copy.gbit(), cpu_ratio * 100, (1 - cpu_ratio) * 100);
  return 0;
}
