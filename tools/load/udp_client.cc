#include "tools/load/udp_client.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/worker_pool.h"
#include "tools/load/pattern.h"
#include "tools/load/udp_flow.h"

namespace zrelay::load {
namespace {

constexpr Duration kPoll = milliseconds(10);
constexpr Duration kProgressAfter = seconds(3);
constexpr uint64_t kFdReserve = 64;  // epoll, eventfds, stdio

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

// User + system CPU of this process (every thread), in seconds.
double ProcessCpuSeconds() {
  struct rusage usage {};
  (void)::getrusage(RUSAGE_SELF, &usage);
  auto secs = [](const struct timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return secs(usage.ru_utime) + secs(usage.ru_stime);
}

class UdpRun {
 public:
  UdpRun(const Config& config, const RunHooks& hooks) : config_(config), hooks_(hooks) {}
  Result<Report> Run();

 private:
  bool AllDone() const {
    return std::all_of(sessions_.begin(), sessions_.end(), [](const auto& s) { return s->done(); });
  }
  uint64_t Sum(Counter UdpCounters::*field) const {
    uint64_t n = 0;
    for (const auto& s : sessions_) n += (s->counters().*field).Get();
    return n;
  }
  void Progress(TimePoint now);

  const Config& config_;
  const RunHooks& hooks_;
  std::unique_ptr<WorkerPool> pool_;
  std::vector<std::unique_ptr<UdpSession>> sessions_;
  TimePoint start_{};
  TimePoint next_progress_{};
  TimePoint last_at_{};
  uint64_t last_replies_ = 0;
};

void UdpRun::Progress(TimePoint now) {
  if (hooks_.progress == nullptr || now < next_progress_) return;
  const bool show =
      (!config_.counted() && config_.duration > kProgressAfter) || now - start_ >= kProgressAfter;
  const uint64_t replies = Sum(&UdpCounters::replies);
  const double dt = Seconds(now - last_at_);
  if (show && dt > 0) {
    uint64_t errors = 0;
    for (const auto& s : sessions_) errors += s->counters().total_errors();
    std::fprintf(hooks_.progress,
                 "[%5.1fs] udp %.0f req/s, %llu requests, %llu lost, %llu errors\n",
                 Seconds(now - start_), static_cast<double>(replies - last_replies_) / dt,
                 static_cast<unsigned long long>(replies),
                 static_cast<unsigned long long>(Sum(&UdpCounters::lost)),
                 static_cast<unsigned long long>(errors));
    std::fflush(hooks_.progress);
  }
  last_replies_ = replies;
  last_at_ = now;
  next_progress_ += seconds(1);
  if (next_progress_ <= now) next_progress_ = now + seconds(1);
}

Result<Report> UdpRun::Run() {
  Report report;
  report.mode = Mode::kUdp;
  report.workers = static_cast<uint64_t>(config_.workers);
  report.conns = config_.flows;
  report.req = report.resp = config_.size;

  struct rlimit limit {};
  (void)::getrlimit(RLIMIT_NOFILE, &limit);
  const uint64_t need = config_.flows + kFdReserve;
  if (need > limit.rlim_cur) {
    return Error::Invalid("--flows " + std::to_string(config_.flows) + ": needs about " +
                          std::to_string(need) + " fds, and this process may open " +
                          std::to_string(limit.rlim_cur) + " (RLIMIT_NOFILE)");
  }
  const uint64_t key_seed = std::random_device{}() * 0x100000001ULL ^
                            static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  PatternTable();  // built before the clock starts

  auto pool = WorkerPool::Start({.workers = config_.workers});
  if (!pool.ok()) return pool.error();
  pool_ = std::move(pool).value();
  const size_t workers = pool_->size();
  for (size_t w = 0; w < workers; ++w) {
    sessions_.push_back(
        std::make_unique<UdpSession>(pool_->loop(w), config_, key_seed, w, workers));
  }

  const double cpu_before = ProcessCpuSeconds();
  start_ = last_at_ = Clock::now();
  next_progress_ = start_ + seconds(1);
  const TimePoint cap_deadline = start_ + config_.cap;
  pool_->RunOnEach([&](size_t w) { sessions_[w]->Start(); });

  bool interrupted = false;
  for (;;) {
    if (AllDone()) break;
    const TimePoint now = Clock::now();
    if (now >= cap_deadline) break;
    if (hooks_.interrupted && hooks_.interrupted()) {
      interrupted = true;
      break;
    }
    Progress(now);
    std::this_thread::sleep_for(std::min<Duration>(kPoll, cap_deadline - now));
  }
  if (!AllDone()) {
    if (!interrupted) {
      report.complete = false;
      report.incomplete_why = "hit the --timeout cap";
    }
    pool_->RunOnEach([&](size_t w) { sessions_[w]->Stop(); });
  }
  if (interrupted) {
    report.complete = false;
    report.incomplete_why = "interrupted";
  }
  // RunOnEach orders these reads after everything the workers did.
  pool_->RunOnEach([](size_t) {});
  report.client_cpu_s = ProcessCpuSeconds() - cpu_before;
  TimePoint first_start = TimePoint::max();
  TimePoint last_end{};
  for (const auto& s : sessions_) {
    const UdpCounters& c = s->counters();
    report.sent += c.sent.Get();
    report.received += c.received.Get();
    report.requests += c.replies.Get();
    report.lost += c.lost.Get();
    report.late += c.late.Get();
    report.mismatches += c.mismatches.Get();
    report.unreachable += c.unreachable.Get();
    report.bytes_up += c.bytes_up.Get();
    report.bytes_down += c.bytes_down.Get();
    for (int k = 0; k < 4; ++k) report.errors[k] += c.errors[k].Get();
    report.latency.Merge(s->histogram());
    if (report.first_error.empty()) report.first_error = s->first_error();
    first_start = std::min(first_start, s->start_time());
    last_end = std::max(last_end, s->end_time());
  }
  if (!sessions_.empty() && last_end > first_start) {
    report.seconds = Seconds(last_end - first_start);
  }
  if (report.requests == 0 && report.first_error.empty()) {
    report.first_error = "no request was answered (" + std::to_string(report.lost) + " lost, " +
                         std::to_string(report.unreachable) + " ICMP unreachable)";
  }
  pool_->RunOnEach([&](size_t w) { sessions_[w].reset(); });
  pool_->Stop();
  return report;
}

}  // namespace

Result<Report> RunUdpClient(const Config& config, const RunHooks& hooks) {
  UdpRun run(config, hooks);
  return run.Run();
}

}  // namespace zrelay::load
