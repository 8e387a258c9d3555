#include "tools/load/runner.h"

#include <sys/resource.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/worker_pool.h"
#include "tools/cli/values.h"
#include "tools/load/proc_stats.h"
#include "tools/load/session.h"
#include "tools/load/tls_client.h"
#include "tools/load/udp_backend.h"
#include "tools/load/udp_client.h"

namespace zrelay::load {
namespace {

constexpr Duration kPoll = milliseconds(10);
constexpr Duration kProgressAfter = seconds(3);
constexpr Duration kStopGrace = seconds(6);   // Stop() -> done, before Abort()
constexpr Duration kIdleSettle = seconds(1);  // let the relay finish its setup
constexpr uint64_t kFdReserve = 64;           // epoll, eventfds, stdio, listeners

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

// Sums the live counters of every session (relaxed reads).
struct Totals {
  uint64_t bytes = 0, requests = 0, ready = 0, errors = 0, dropped = 0;
};

class ClientRun {
 public:
  ClientRun(const Config& config, const RunHooks& hooks) : config_(config), hooks_(hooks) {}
  Result<Report> Run();

 private:
  Totals Sum() const;
  bool AllDone() const;
  bool Interrupted() const { return hooks_.interrupted && hooks_.interrupted(); }
  // Waits until `until()` or `deadline` or an interrupt; prints progress.
  // Returns true when `until()` became true.
  bool WaitUntil(const std::function<bool()>& until, TimePoint deadline);
  void Progress(TimePoint now);
  void RunIdlePhases(Report& report);
  void Finish(Report& report);

  const Config& config_;
  const RunHooks& hooks_;
  RunShared shared_;
  std::unique_ptr<TlsClient> tls_;  // outlives the workers' connections
  std::unique_ptr<WorkerPool> pool_;
  std::vector<std::unique_ptr<ClientSession>> sessions_;
  TimePoint start_{};
  TimePoint cap_deadline_{};
  TimePoint next_progress_{};
  Totals last_{};
  TimePoint last_at_{};
  bool interrupted_ = false;
  bool holding_ = false;
};

Totals ClientRun::Sum() const {
  Totals t;
  for (const auto& s : sessions_) {
    const Counters& c = s->counters();
    t.bytes += c.bytes_up.Get() + c.bytes_down.Get();
    t.requests += c.requests.Get();
    t.ready += c.ready.Get();
    t.errors += c.total_errors();
    t.dropped += c.dropped.Get();
  }
  return t;
}

bool ClientRun::AllDone() const {
  return std::all_of(sessions_.begin(), sessions_.end(), [](const auto& s) { return s->done(); });
}

void ClientRun::Progress(TimePoint now) {
  if (hooks_.progress == nullptr || now < next_progress_) return;
  const bool long_run =
      !config_.counted() && config_.mode != Mode::kIdle && config_.duration > kProgressAfter;
  const bool show = long_run || now - start_ >= kProgressAfter;
  Totals t = Sum();
  const double dt = Seconds(now - last_at_);
  if (show && dt > 0) {
    const double elapsed = Seconds(now - start_);
    std::string what;
    char buf[256];
    switch (config_.mode) {
      case Mode::kBulk:
        std::snprintf(buf, sizeof(buf), "%.2f Gbit/s, %s moved",
                      GbitPerSecond(t.bytes - last_.bytes, dt),
                      FormatBytes(static_cast<double>(t.bytes)).c_str());
        break;
      case Mode::kRr:
        std::snprintf(buf, sizeof(buf), "%.0f req/s, %llu requests",
                      (t.requests - last_.requests) / dt,
                      static_cast<unsigned long long>(t.requests));
        break;
      case Mode::kConnect:
        std::snprintf(buf, sizeof(buf), "%.0f conn/s, %llu connections",
                      (t.requests - last_.requests) / dt,
                      static_cast<unsigned long long>(t.requests));
        break;
      default:
        std::snprintf(buf, sizeof(buf), "%s %llu of %llu pairs, %llu dropped",
                      holding_ ? "holding" : "opening", static_cast<unsigned long long>(t.ready),
                      static_cast<unsigned long long>(config_.pairs),
                      static_cast<unsigned long long>(t.dropped));
        break;
    }
    std::fprintf(hooks_.progress, "[%5.1fs] %s %s, %llu errors\n", elapsed, ModeName(config_.mode),
                 buf, static_cast<unsigned long long>(t.errors));
    std::fflush(hooks_.progress);
  }
  last_ = t;
  last_at_ = now;
  next_progress_ += seconds(1);
  if (next_progress_ <= now) next_progress_ = now + seconds(1);
}

bool ClientRun::WaitUntil(const std::function<bool()>& until, TimePoint deadline) {
  for (;;) {
    if (until()) return true;
    TimePoint now = Clock::now();
    if (now >= deadline) return false;
    if (Interrupted()) {
      interrupted_ = true;
      return false;
    }
    Progress(now);
    std::this_thread::sleep_for(std::min<Duration>(kPoll, deadline - now));
  }
}

void ClientRun::RunIdlePhases(Report& report) {
  // Opening: every pair ready or failed.
  bool opened = WaitUntil(
      [&] {
        Totals t = Sum();
        return t.ready + t.errors >= config_.pairs || AllDone();
      },
      cap_deadline_);
  if (!opened) return;
  holding_ = true;
  if (interrupted_) return;
  TimePoint hold_start = Clock::now();
  WaitUntil([] { return false; }, std::min(cap_deadline_, hold_start + kIdleSettle));
  if (!interrupted_)
    WaitUntil([] { return false; }, std::min(cap_deadline_, hold_start + config_.hold));
  if (config_.relay_pid != 0) {
    auto sample = SampleProcess(config_.relay_pid);
    if (sample.ok()) {
      report.relay_hold = *sample;
    } else if (report.first_error.empty()) {
      report.first_error = sample.error().message();
    }
  }
  report.seconds = Seconds(Clock::now() - hold_start);
}

void ClientRun::Finish(Report& report) {
  const bool done = AllDone();
  if (!done) {
    // Time is up (idle's hold, an interrupt, or the hard cap): close what is
    // left. A graceful stop first, so bulk streams still drain and verify.
    const bool hard = Clock::now() >= cap_deadline_;
    if (!hard && config_.mode != Mode::kIdle) {
      pool_->RunOnEach([&](size_t w) { sessions_[w]->Stop(); });
      WaitUntil([&] { return AllDone(); }, std::min(cap_deadline_, Clock::now() + kStopGrace));
    }
    pool_->RunOnEach([&](size_t w) { sessions_[w]->Abort(); });
    if (hard) {
      report.complete = false;
      report.incomplete_why = "hit the --timeout cap";
    }
  }
  if (interrupted_) {
    report.complete = false;
    report.incomplete_why = "interrupted";
  }
  if (config_.mode == Mode::kIdle && !holding_ && report.complete) {
    report.complete = false;
    report.incomplete_why = "not every pair opened before the --timeout cap";
  }
  // RunOnEach orders these reads after everything the workers did.
  TimePoint first_start = TimePoint::max();
  TimePoint last_end{};
  const TimePoint now = Clock::now();
  pool_->RunOnEach([&](size_t) {});
  for (const auto& s : sessions_) {
    const Counters& c = s->counters();
    report.bytes_up += c.bytes_up.Get();
    report.bytes_down += c.bytes_down.Get();
    report.requests += c.requests.Get();
    report.mismatches += c.mismatches.Get();
    report.ready += c.ready.Get();
    report.dropped += c.dropped.Get();
    for (int k = 0; k < 4; ++k) report.errors[k] += c.errors[k].Get();
    report.latency.Merge(s->histogram());
    if (report.first_error.empty()) report.first_error = s->first_error();
    first_start = std::min(first_start, s->start_time());
    last_end = std::max(last_end, s->done() ? s->end_time() : now);
  }
  if (config_.mode != Mode::kIdle && !sessions_.empty()) {
    report.seconds = Seconds(last_end - first_start);
  }
}

Result<Report> ClientRun::Run() {
  Report report;
  report.mode = config_.mode;
  report.direction = config_.direction;
  report.verify = config_.verify;
  report.tls = config_.tls;
  report.workers = static_cast<uint64_t>(config_.workers);
  report.conns = ConnCountOf(config_);
  report.req = config_.req;
  report.resp = config_.resp;
  report.relay_pid = config_.relay_pid;

  struct rlimit limit {};
  (void)::getrlimit(RLIMIT_NOFILE, &limit);
  const uint64_t need = report.conns + kFdReserve;
  if (need > limit.rlim_cur) {
    const char* flag = config_.mode == Mode::kBulk   ? "--streams"
                       : config_.mode == Mode::kIdle ? "--pairs"
                                                     : "--conns";
    return Error::Invalid(std::string(flag) + " " + std::to_string(report.conns) +
                          ": needs about " + std::to_string(need) +
                          " fds, and this process may open " + std::to_string(limit.rlim_cur) +
                          " (RLIMIT_NOFILE)");
  }
  if (config_.relay_pid != 0) {
    auto before = SampleProcess(config_.relay_pid);
    if (!before.ok()) return before.error();
    report.relay_before = *before;
  }

  shared_.config = &config_;
  shared_.key_seed = std::random_device{}() * 0x100000001ULL ^
                     static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  if (config_.tls) {
    auto tls = TlsClient::Create(config_);
    if (!tls.ok()) return tls.error();
    tls_ = std::move(tls).value();
    const TlsClient* client = tls_.get();
    shared_.make_transport = [client](EventLoop& loop, FdWatch& watch, int fd) {
      return client->Wrap(loop, watch, fd);
    };
  } else {
    shared_.make_transport = [](EventLoop& loop, FdWatch& watch, int fd) {
      return std::unique_ptr<Transport>(new PlainTransport(loop, watch, fd));
    };
  }

  auto pool = WorkerPool::Start({.workers = config_.workers});
  if (!pool.ok()) return pool.error();
  pool_ = std::move(pool).value();
  const size_t workers = pool_->size();
  sessions_.resize(workers);
  for (size_t w = 0; w < workers; ++w) {
    sessions_[w] = std::make_unique<ClientSession>(pool_->loop(w), shared_, w, workers);
  }

  start_ = last_at_ = Clock::now();
  next_progress_ = start_ + seconds(1);
  cap_deadline_ = start_ + config_.cap;
  pool_->RunOnEach([&](size_t w) { sessions_[w]->Start(); });

  if (config_.mode == Mode::kIdle) {
    RunIdlePhases(report);
  } else {
    WaitUntil([&] { return AllDone(); }, cap_deadline_);
  }
  Finish(report);

  if (config_.mode == Mode::kIdle && config_.relay_pid != 0 && report.relay_hold) {
    // Give the relay a moment to notice the closes, then look again: fds
    // that stay up would be a leak.
    std::this_thread::sleep_for(kIdleSettle);
    auto after = SampleProcess(config_.relay_pid);
    if (after.ok()) report.relay_after = *after;
  }
  pool_->RunOnEach([&](size_t w) { sessions_[w].reset(); });
  pool_->Stop();
  return report;
}

}  // namespace

Result<Report> RunClient(const Config& config, const RunHooks& hooks) {
  if (config.mode == Mode::kUdp) return RunUdpClient(config, hooks);
  ClientRun run(config, hooks);
  return run.Run();
}

Result<BackendTotals> RunBackend(const Config& config, const RunHooks& hooks,
                                 const std::function<void(const Address&)>& on_listening) {
  auto pool = WorkerPool::Start({.workers = config.workers});
  if (!pool.ok()) return pool.error();
  // One of the two backends; the loop below only needs its totals.
  std::unique_ptr<Backend> tcp;
  std::unique_ptr<UdpEchoBackend> udp;
  if (config.udp) {
    auto b = UdpEchoBackend::Start(**pool, config);
    if (!b.ok()) return b.error();
    udp = std::move(b).value();
  } else {
    auto b = Backend::Start(**pool, config);
    if (!b.ok()) return b.error();
    tcp = std::move(b).value();
  }
  auto totals_now = [&] { return udp ? udp->Totals() : tcp->Totals(); };
  if (on_listening) on_listening(udp ? udp->local_address() : tcp->local_address());

  const TimePoint start = Clock::now();
  const TimePoint deadline = start + config.duration;
  TimePoint next = start + seconds(1);
  BackendTotals last;
  for (;;) {
    TimePoint now = Clock::now();
    if (now >= deadline || (hooks.interrupted && hooks.interrupted())) break;
    if (now >= next) {
      BackendTotals t = totals_now();
      // Only seconds with traffic: an idle backend stays quiet.
      if (hooks.progress != nullptr && t.udp && t.datagrams_in != last.datagrams_in) {
        std::fprintf(hooks.progress,
                     "[%5.0fs] backend udp echo: in %llu dgram/s, out %llu dgram/s, %.3f Gbit/s "
                     "each way, %llu send errors\n",
                     Seconds(now - start),
                     static_cast<unsigned long long>(t.datagrams_in - last.datagrams_in),
                     static_cast<unsigned long long>(t.datagrams_out - last.datagrams_out),
                     GbitPerSecond(t.bytes_in - last.bytes_in, 1.0),
                     static_cast<unsigned long long>(t.send_errors));
        std::fflush(hooks.progress);
      } else if (hooks.progress != nullptr && !t.udp &&
                 (t.bytes_in != last.bytes_in || t.bytes_out != last.bytes_out ||
                  t.accepted != last.accepted)) {
        std::fprintf(hooks.progress,
                     "[%5.0fs] backend %s: %llu active, %llu accepted, in %.2f Gbit/s, out %.2f "
                     "Gbit/s, %llu mismatched bytes\n",
                     Seconds(now - start), BackendModeName(config.backend_mode),
                     static_cast<unsigned long long>(t.active),
                     static_cast<unsigned long long>(t.accepted),
                     GbitPerSecond(t.bytes_in - last.bytes_in, 1.0),
                     GbitPerSecond(t.bytes_out - last.bytes_out, 1.0),
                     static_cast<unsigned long long>(t.mismatches));
        std::fflush(hooks.progress);
      }
      last = t;
      next += seconds(1);
    }
    std::this_thread::sleep_for(std::min<Duration>(kPoll, deadline - now));
  }
  if (udp) udp->Stop();
  if (tcp) tcp->Stop();
  BackendTotals totals = totals_now();
  udp.reset();
  tcp.reset();
  (*pool)->Stop();
  return totals;
}

std::string FormatBackendTotals(const BackendTotals& t, double seconds, bool json) {
  char buf[512];
  if (t.udp && json) {
    std::snprintf(buf, sizeof(buf),
                  "{\"mode\": \"backend\", \"udp\": true, \"seconds\": %.3f, \"datagrams_in\": "
                  "%llu, \"datagrams_out\": %llu, \"bytes_in\": %llu, \"bytes_out\": %llu, "
                  "\"send_errors\": %llu}",
                  seconds, static_cast<unsigned long long>(t.datagrams_in),
                  static_cast<unsigned long long>(t.datagrams_out),
                  static_cast<unsigned long long>(t.bytes_in),
                  static_cast<unsigned long long>(t.bytes_out),
                  static_cast<unsigned long long>(t.send_errors));
  } else if (t.udp) {
    std::snprintf(buf, sizeof(buf),
                  "zrelay-load backend (udp echo)\n  %-16s %.2f\n  %-16s %llu in, %llu out\n"
                  "  %-16s %s\n  %-16s %s\n  %-16s %llu\n",
                  "seconds", seconds, "datagrams", static_cast<unsigned long long>(t.datagrams_in),
                  static_cast<unsigned long long>(t.datagrams_out), "bytes in",
                  FormatBytes(static_cast<double>(t.bytes_in)).c_str(), "bytes out",
                  FormatBytes(static_cast<double>(t.bytes_out)).c_str(), "send errors",
                  static_cast<unsigned long long>(t.send_errors));
  } else if (json) {
    std::snprintf(
        buf, sizeof(buf),
        "{\"mode\": \"backend\", \"seconds\": %.3f, \"accepted\": %llu, \"bytes_in\": "
        "%llu, \"bytes_out\": %llu, \"verified\": %llu, \"mismatches\": %llu, "
        "\"resets\": %llu}",
        seconds, static_cast<unsigned long long>(t.accepted),
        static_cast<unsigned long long>(t.bytes_in), static_cast<unsigned long long>(t.bytes_out),
        static_cast<unsigned long long>(t.verified), static_cast<unsigned long long>(t.mismatches),
        static_cast<unsigned long long>(t.resets));
  } else {
    std::snprintf(buf, sizeof(buf),
                  "zrelay-load backend\n  %-16s %.2f\n  %-16s %llu\n  %-16s %s\n  %-16s %s\n"
                  "  %-16s %llu streams clean, %llu mismatched bytes\n  %-16s %llu\n",
                  "seconds", seconds, "accepted", static_cast<unsigned long long>(t.accepted),
                  "bytes in", FormatBytes(static_cast<double>(t.bytes_in)).c_str(), "bytes out",
                  FormatBytes(static_cast<double>(t.bytes_out)).c_str(), "verify",
                  static_cast<unsigned long long>(t.verified),
                  static_cast<unsigned long long>(t.mismatches), "resets/errors",
                  static_cast<unsigned long long>(t.resets));
  }
  return buf;
}

}  // namespace zrelay::load
