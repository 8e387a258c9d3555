// Least connections, weighted: the healthy backend with the fewest open pairs
// per unit of weight (open / weight, compared by cross-multiplying), counted
// across all workers by the BackendSet's relaxed counters. Two workers that
// pick at the same instant may both choose the same backend; the next picks
// see both pairs and even it out, which is all a lock would buy.
//
// Ties go round-robin: each worker starts its scan just after the backend it
// picked last and keeps the first of the lowest, so equal backends with no
// open pairs (short connections) alternate instead of all going to the first.
#include <cstdint>

#include "relay/balancer_policies.h"

namespace zrelay {
namespace {

class LeastConnPicker final : public Picker {
 public:
  explicit LeastConnPicker(const BackendSet& backends) : backends_(backends) {}

  std::optional<size_t> Pick(const Address& /*client*/) override {
    const size_t n = backends_.size();
    std::optional<size_t> best;
    uint64_t best_open = 0;
    uint64_t best_weight = 1;
    for (size_t k = 0, i = next_; k < n; ++k, i = (i + 1 == n) ? 0 : i + 1) {
      if (!backends_.healthy(i)) continue;
      const uint64_t open = backends_.open(i);
      const uint64_t weight = backends_.weight(i);
      // open / weight < best_open / best_weight, without division.
      if (!best || open * best_weight < best_open * weight) {
        best = i;
        best_open = open;
        best_weight = weight;
      }
    }
    if (best) next_ = (*best + 1 == n) ? 0 : *best + 1;
    return best;
  }

 private:
  const BackendSet& backends_;
  size_t next_ = 0;  // where the next scan starts
};

class LeastConnBalancer final : public Balancer {
 public:
  explicit LeastConnBalancer(const BackendSet& backends) : backends_(backends) {}
  std::unique_ptr<Picker> NewPicker() const override {
    return std::make_unique<LeastConnPicker>(backends_);
  }

 private:
  const BackendSet& backends_;
};

}  // namespace

std::unique_ptr<Balancer> NewLeastConnBalancer(const BackendSet& backends) {
  return std::make_unique<LeastConnBalancer>(backends);
}

}  // namespace zrelay
