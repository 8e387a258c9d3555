// Pump micro benchmarks: the splice pump against the copy pump over loopback
// TCP (client -> relay -> backend, one engine worker), and the copy pump's
// ring buffer on its own.
//
//   bazel run -c opt //bench/relay:pump_bench -- --benchmark_min_time=1
//
// BM_Relay/<mode>/<chunk>: a sender thread writes `chunk`-sized send()s into
// the client socket as fast as it can; the benchmark thread reads the backend
// socket (256 KiB reads) and counts `chunk` bytes per iteration. Reported:
// bytes_per_second (wall clock: the work happens on other threads), and the
// relay worker's own CPU time per GiB moved (cpu_ms_per_GiB) and its
// utilisation (relay_cpu_util, 1.0 = one core busy).
#include <benchmark/benchmark.h>
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "relay/relay.h"
#include "relay/ring_buffer.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

// ---- The relay worker's CPU time ----------------------------------------------

// The kernel thread id of the thread named `name` in this process, or -1.
pid_t FindThread(const std::string& name) {
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  pid_t found = -1;
  while (struct dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string line;
    if (std::getline(comm, line) && line == name) {
      found = static_cast<pid_t>(std::stol(e->d_name));
      break;
    }
  }
  ::closedir(dir);
  return found;
}

// CPU time (user + system) of thread `tid` of this process, in nanoseconds.
//
// Why this method: the Engine does not expose its threads, and its loops
// only run our code through Pipe() (so getrusage(RUSAGE_THREAD) from a posted
// task is not available to a library user). The kernel's per-thread CPU
// clock is: clock id ((~tid) << 3) | CPUCLOCK_PERTHREAD_MASK (4) |
// CPUCLOCK_SCHED (2) is exactly what glibc's pthread_getcpuclockid() builds
// from a pthread's tid, and clock_gettime() accepts it for any thread of the
// calling process. It is nanosecond-accurate (scheduler runtime), where
// /proc/self/task/<tid>/stat's utime + stime tick at 10 ms (USER_HZ 100):
// too coarse for short benchmark runs. That file is the fallback.
int64_t ThreadCpuNs(pid_t tid) {
  const clockid_t clock = static_cast<clockid_t>((~static_cast<unsigned>(tid)) << 3) | 6;
  struct timespec ts {};
  if (::clock_gettime(clock, &ts) == 0) return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the ")" that ends comm: state is field 3, utime 14, stime 15.
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  int64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return (utime + stime) * (1'000'000'000LL / ::sysconf(_SC_CLK_TCK));
}

// The CPUs this process may run on.
std::vector<int> AllowedCpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
  }
  return cpus;
}

void PinThisThread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)::pthread_setaffinity_np(::pthread_self(), sizeof(set), &set);
}

void SetBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

// ---- Splice pump vs copy pump ---------------------------------------------------

void BM_Relay(benchmark::State& state, RelayMode mode) {
  const size_t chunk = static_cast<size_t>(state.range(0));
  // With two or more CPUs the relay worker gets the first one to itself
  // (pin_cpus pins worker 0 to the first allowed CPU) and the sender and
  // reader share the last: otherwise three busy threads on two cores make
  // the numbers depend on the scheduler more than on the pump.
  const std::vector<int> cpus = AllowedCpus();
  const bool pin = cpus.size() >= 2;
  EngineOptions options;
  options.workers = 1;
  options.mode = mode;
  options.pin_cpus = pin;
  auto engine = Engine::Start(options);
  if (!engine.ok()) return state.SkipWithError(engine.error().message().c_str());
  const pid_t worker = FindThread("zrelay-w0");
  if (worker < 0) return state.SkipWithError("no thread named zrelay-w0");

  auto a = testing::TcpPair(AF_INET);
  auto b = testing::TcpPair(AF_INET);
  if (!a.ok() || !b.ok()) return state.SkipWithError("loopback TCP pair failed");
  UniqueFd client = std::move(a->client);
  UniqueFd backend = std::move(b->client);
  SetBlocking(client.get());
  SetBlocking(backend.get());
  struct timeval ten_s {10, 0};  // a stuck relay fails the run instead of hanging it
  ::setsockopt(backend.get(), SOL_SOCKET, SO_RCVTIMEO, &ten_s, sizeof(ten_s));
  engine.value()->Pipe(Leg{std::move(a->server)}, Leg{std::move(b->server)});

  cpu_set_t saved;
  ::pthread_getaffinity_np(::pthread_self(), sizeof(saved), &saved);
  if (pin) PinThisThread(cpus.back());

  std::atomic<bool> stop{false};
  std::thread sender([&] {
    if (pin) PinThisThread(cpus.back());
    std::vector<char> buf(chunk, 'z');
    while (!stop.load(std::memory_order_relaxed)) {
      size_t off = 0;
      while (off < chunk) {
        ssize_t n = ::send(client.get(), buf.data() + off, chunk - off, MSG_NOSIGNAL);
        if (n <= 0) return;
        off += static_cast<size_t>(n);
      }
    }
    ::shutdown(client.get(), SHUT_WR);
  });

  std::vector<char> buf(256 << 10);
  uint64_t available = 0;  // read but not yet counted by an iteration
  bool failed = false;
  const int64_t cpu_start = ThreadCpuNs(worker);
  const auto wall_start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    while (available < chunk) {
      ssize_t n = ::recv(backend.get(), buf.data(), buf.size(), 0);
      if (n <= 0) {
        failed = true;
        break;
      }
      available += static_cast<uint64_t>(n);
    }
    if (failed) break;
    available -= chunk;
  }
  const int64_t cpu_ns = ThreadCpuNs(worker) - cpu_start;
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();

  // Let the sender finish its chunk, then drain to the relayed FIN.
  stop = true;
  for (int i = 0; i < 1'000'000; ++i) {
    ssize_t n = ::recv(backend.get(), buf.data(), buf.size(), 0);
    if (n <= 0) break;
  }
  sender.join();
  ::pthread_setaffinity_np(::pthread_self(), sizeof(saved), &saved);
  if (failed) return state.SkipWithError("backend read failed or timed out");

  const double bytes = static_cast<double>(state.iterations()) * static_cast<double>(chunk);
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["cpu_ms_per_GiB"] = cpu_ns / 1e6 / (bytes / (1 << 30));
  state.counters["relay_cpu_util"] = wall_s > 0 ? cpu_ns / 1e9 / wall_s : 0;
}

BENCHMARK_CAPTURE(BM_Relay, splice, RelayMode::kSplice)
    ->RangeMultiplier(4)
    ->Range(1 << 10, 1 << 20)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Relay, copy, RelayMode::kCopy)
    ->RangeMultiplier(4)
    ->Range(1 << 10, 1 << 20)
    ->UseRealTime();

// ---- Ring buffer ------------------------------------------------------------------

// A steady stream through a 64 KiB ring that always holds ~20 KB, so the data
// and the free space wrap around the end: per iteration one readv-like fill
// of `chunk` bytes (FreeIovecs + copy + Commit) and one writev-like drain
// (DataIovecs + copy + Consume).
void BM_RingBufferStream(benchmark::State& state) {
  const size_t chunk = static_cast<size_t>(state.range(0));
  RingBuffer ring(64 << 10);
  std::vector<char> in(chunk, 'r'), out(chunk);
  ring.Commit(20000);
  for (auto _ : state) {
    struct iovec iov[2];
    int n = ring.FreeIovecs(iov);
    size_t done = 0;
    for (int i = 0; i < n && done < chunk; ++i) {
      size_t len = std::min(iov[i].iov_len, chunk - done);
      std::memcpy(iov[i].iov_base, in.data() + done, len);
      done += len;
    }
    ring.Commit(done);
    n = ring.DataIovecs(iov);
    size_t taken = 0;
    for (int i = 0; i < n && taken < done; ++i) {
      size_t len = std::min(iov[i].iov_len, done - taken);
      std::memcpy(out.data() + taken, iov[i].iov_base, len);
      taken += len;
    }
    ring.Consume(taken);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * chunk));
}
BENCHMARK(BM_RingBufferStream)->RangeMultiplier(8)->Range(64, 32 << 10)->Arg(1000);

// The bookkeeping alone: the cost a pump pays per readv/writev around the
// kernel call.
void BM_RingBufferIovecs(benchmark::State& state) {
  RingBuffer ring(64 << 10);
  ring.Commit(30000);
  for (auto _ : state) {
    struct iovec iov[2];
    benchmark::DoNotOptimize(ring.FreeIovecs(iov));
    ring.Commit(777);
    benchmark::DoNotOptimize(ring.DataIovecs(iov));
    ring.Consume(777);
    benchmark::DoNotOptimize(iov);
  }
}
BENCHMARK(BM_RingBufferIovecs);

}  // namespace
}  // namespace zrelay
