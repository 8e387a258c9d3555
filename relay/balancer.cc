#include "relay/balancer.h"

#include <cassert>
#include <string>
#include <utility>

#include "relay/balancer_policies.h"

namespace zrelay {
namespace {

struct PolicyName {
  BalancePolicy policy;
  const char* name;
};
constexpr PolicyName kPolicyNames[] = {
    {BalancePolicy::kRoundRobin, "round-robin"},
    {BalancePolicy::kLeastConn, "least-conn"},
    {BalancePolicy::kMaglev, "maglev"},
};

}  // namespace

Result<BalancePolicy> ParseBalancePolicy(std::string_view name) {
  std::string choices;
  for (const PolicyName& entry : kPolicyNames) {
    if (name == entry.name) return entry.policy;
    if (!choices.empty()) choices += ", ";
    choices += entry.name;
  }
  return Error::Invalid("unknown balancing policy '" + std::string(name) +
                        "' (choices: " + choices + ")");
}

const char* BalancePolicyName(BalancePolicy policy) {
  for (const PolicyName& entry : kPolicyNames) {
    if (entry.policy == policy) return entry.name;
  }
  return "unknown";
}

Result<std::unique_ptr<BackendSet>> BackendSet::Create(std::vector<BackendSpec> specs) {
  if (specs.empty()) return Error::Invalid("backend list is empty");
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string name = specs[i].address.ToString();
    if (specs[i].weight < 1 || specs[i].weight > kMaxBackendWeight) {
      return Error::Invalid("backend " + name + ": weight " + std::to_string(specs[i].weight) +
                            " is out of range (1.." + std::to_string(kMaxBackendWeight) + ")");
    }
    // Quadratic, but once per configuration and over a short list.
    for (size_t j = 0; j < i; ++j) {
      if (specs[j].address.ToString() == name) {
        return Error::Invalid("backend " + name + " is listed twice");
      }
    }
  }
  return std::unique_ptr<BackendSet>(new BackendSet(std::move(specs)));
}

BackendSet::BackendSet(std::vector<BackendSpec> specs)
    : specs_(std::move(specs)),
      healthy_(new std::atomic<bool>[specs_.size()]),
      open_(new OpenCounter[specs_.size()]) {
  for (size_t i = 0; i < specs_.size(); ++i) healthy_[i].store(true, std::memory_order_relaxed);
}

bool BackendSet::AnyHealthy() const {
  for (size_t i = 0; i < size(); ++i) {
    if (healthy(i)) return true;
  }
  return false;
}

BackendLease BackendSet::Lease(size_t i) {
  assert(i < size());
  open_[i].value.fetch_add(1, std::memory_order_relaxed);
  return {this, i};
}

BackendLease::BackendLease(BackendLease&& other) noexcept
    : set_(std::exchange(other.set_, nullptr)), index_(other.index_) {}

BackendLease& BackendLease::operator=(BackendLease&& other) noexcept {
  if (this != &other) {
    Release();
    set_ = std::exchange(other.set_, nullptr);
    index_ = other.index_;
  }
  return *this;
}

void BackendLease::Release() {
  if (set_ == nullptr) return;
  [[maybe_unused]] const uint32_t before =
      set_->open_[index_].value.fetch_sub(1, std::memory_order_relaxed);
  assert(before > 0);
  set_ = nullptr;
}

std::unique_ptr<Balancer> Balancer::Create(BalancePolicy policy, const BackendSet& backends) {
  switch (policy) {
    case BalancePolicy::kRoundRobin:
      return NewRoundRobinBalancer(backends);
    case BalancePolicy::kLeastConn:
      return NewLeastConnBalancer(backends);
    case BalancePolicy::kMaglev:
      return NewMaglevBalancer(backends);
  }
  return nullptr;
}

}  // namespace zrelay
