#include "relay/health_checker.h"

#include <random>
#include <utility>

#include "engine/check.h"
#include "engine/timer_wheel.h"
#include "relay/health_probe.h"

namespace zrelay {

// One target: its probe, the timer of its next check, and its counts.
// Deferrable because the checker may die while one of its watches has events
// pending in the loop's current turn.
class HealthChecker::Target : public Deferrable, private TimerHandler, private HealthProbeHandler {
 public:
  Target(HealthChecker& checker, size_t index, HealthTarget target)
      : checker_(checker), index_(index), probe_(checker.loop_, std::move(target)), timer_(this) {}

  void ScheduleFirst(Duration delay) { checker_.loop_.ArmTimer(timer_, delay); }
  void Stop() {
    checker_.loop_.CancelTimer(timer_);
    probe_.Cancel();
  }
  bool healthy() const { return healthy_; }

 private:
  void OnTimer(Timer&) override {
    started_ = checker_.loop_.now();
    probe_.Start(checker_.options_.timeout, this);
  }

  void OnProbeDone(Status result) override {
    EventLoop& loop = checker_.loop_;
    const HealthCheckOptions& options = checker_.options_;
    // The next check starts one interval after this one did (timeout <
    // interval, so never while this one runs): each target keeps the phase
    // it was given at Start, and the spread holds.
    loop.ArmTimer(timer_, started_ + options.interval - loop.now());
    std::string reason;
    if (result.ok()) {
      failures_ = 0;
      ++successes_;
      if (healthy_ || successes_ < options.rise) return;
      healthy_ = true;
      reason = std::to_string(successes_) + (successes_ == 1 ? " check passed" : " checks passed");
    } else {
      successes_ = 0;
      ++failures_;
      if (!healthy_ || failures_ < options.fall) return;
      healthy_ = false;
      reason = result.error().message();
    }
    if (checker_.on_change_) checker_.on_change_(index_, healthy_, reason);
  }

  HealthChecker& checker_;
  const size_t index_;
  HealthProbe probe_;
  Timer timer_;
  TimePoint started_{};
  bool healthy_ = true;
  int successes_ = 0;  // consecutive
  int failures_ = 0;   // consecutive
};

namespace {

Status Validate(const HealthCheckOptions& options, const std::vector<HealthTarget>& targets) {
  if (options.interval <= Duration::zero()) {
    return Error::Invalid("health check interval must be positive, got " +
                          FormatMs(options.interval));
  }
  if (options.timeout <= Duration::zero()) {
    return Error::Invalid("health check timeout must be positive, got " +
                          FormatMs(options.timeout));
  }
  if (options.timeout >= options.interval) {
    return Error::Invalid("health check timeout (" + FormatMs(options.timeout) +
                          ") must be shorter than its interval (" + FormatMs(options.interval) +
                          ")");
  }
  if (options.fall < 1) {
    return Error::Invalid("health check fall must be at least 1, got " +
                          std::to_string(options.fall));
  }
  if (options.rise < 1) {
    return Error::Invalid("health check rise must be at least 1, got " +
                          std::to_string(options.rise));
  }
  for (size_t i = 0; i < targets.size(); ++i) {
    if (targets[i].address.family() == AF_UNSPEC) {
      return Error::Invalid("health check target #" + std::to_string(i) + " has no address");
    }
  }
  return Status::Ok();
}

}  // namespace

HealthChecker::HealthChecker(EventLoop& loop, const HealthCheckOptions& options,
                             OnHealthChange on_change)
    : loop_(loop), options_(options), on_change_(std::move(on_change)) {}

Result<std::unique_ptr<HealthChecker>> HealthChecker::Start(EventLoop& loop,
                                                            const HealthCheckOptions& options,
                                                            std::vector<HealthTarget> targets,
                                                            OnHealthChange on_change) {
  ZR_CHECK(loop.InLoopThread(), "HealthChecker::Start off the loop's thread");
  if (Status valid = Validate(options, targets); !valid) return valid.error();
  std::unique_ptr<HealthChecker> checker(new HealthChecker(loop, options, std::move(on_change)));
  // Target i first checks at a random point of the i-th of n equal slices of
  // the interval: evenly spread within one checker, and not in lockstep with
  // another checker (another listener, another process) of the same backends.
  std::minstd_rand random(std::random_device{}());
  std::uniform_real_distribution<double> within_slice(0.0, 1.0);
  const double n = static_cast<double>(targets.size());
  const double interval = static_cast<double>(options.interval.count());
  checker->targets_.reserve(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    auto target = std::make_unique<Target>(*checker, i, std::move(targets[i]));
    const double slice = (static_cast<double>(i) + within_slice(random)) / n;
    target->ScheduleFirst(Duration(static_cast<Duration::rep>(slice * interval)));
    checker->targets_.push_back(std::move(target));
  }
  return checker;
}

HealthChecker::~HealthChecker() {
  for (auto& target : targets_) {
    target->Stop();
    loop_.DeferDelete(std::move(target));
  }
}

bool HealthChecker::healthy(size_t target) const {
  ZR_CHECK(target < targets_.size(), "HealthChecker::healthy(%zu) of %zu targets", target,
           targets_.size());
  return targets_[target]->healthy();
}

}  // namespace zrelay
