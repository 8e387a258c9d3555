// Smooth weighted round-robin, nginx's algorithm: on each pick every healthy
// backend's current weight grows by its weight, the largest is picked and
// loses the total. Weights 5, 1, 1 give a a b a c a a: the heavy backend's
// turns are spread through the period instead of coming in a burst.
//
// Each worker keeps its own current weights. Sharing them would put a lock
// (or a compare-and-swap loop over every backend) on every accept, with the
// cache lines bouncing between cores; kept per worker, each worker's
// sequence is exactly weighted and smooth, and so is their sum. All that is
// lost is the interleaving across workers (two workers may both start with
// the heavy backend), which the kernel's spreading of clients over workers
// already blurs. nginx without a shared zone does the same per process.
#include <cstdint>
#include <vector>

#include "relay/balancer_policies.h"

namespace zrelay {
namespace {

class RoundRobinPicker final : public Picker {
 public:
  explicit RoundRobinPicker(const BackendSet& backends)
      : backends_(backends), current_(backends.size(), 0) {}

  std::optional<size_t> Pick(const Address& /*client*/) override {
    // Unhealthy backends sit the round out (their current weight stays as
    // it was), as nginx does with a peer that is down.
    int64_t total = 0;
    std::optional<size_t> best;
    for (size_t i = 0; i < current_.size(); ++i) {
      if (!backends_.healthy(i)) continue;
      current_[i] += backends_.weight(i);
      total += backends_.weight(i);
      if (!best || current_[i] > current_[*best]) best = i;
    }
    if (best) current_[*best] -= total;
    return best;
  }

 private:
  const BackendSet& backends_;
  std::vector<int64_t> current_;
};

class RoundRobinBalancer final : public Balancer {
 public:
  explicit RoundRobinBalancer(const BackendSet& backends) : backends_(backends) {}
  std::unique_ptr<Picker> NewPicker() const override {
    return std::make_unique<RoundRobinPicker>(backends_);
  }

 private:
  const BackendSet& backends_;
};

}  // namespace

std::unique_ptr<Balancer> NewRoundRobinBalancer(const BackendSet& backends) {
  return std::make_unique<RoundRobinBalancer>(backends);
}

}  // namespace zrelay
