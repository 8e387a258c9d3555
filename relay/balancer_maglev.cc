// Maglev: the table (balancer_maglev.h) and the policy over it.
//
// Unhealthy backends: a lookup that lands on one walks on to the next slots
// until it finds a healthy backend (the paper's treatment of lookups that
// hit removed entries), instead of rebuilding the table from the healthy
// set. Why:
//  - only the clients of the unhealthy backend move, and when it recovers
//    exactly they move back; a rebuilt table also moves a few of everyone
//    else's clients, each time a health flag flips;
//  - the table never changes after it is built, so all workers read one
//    copy with no lock, no RCU and no rebuild racing a flapping health flag;
//  - the slots after one backend's slot belong to the other backends in
//    proportion to their weights, so its clients spread over them.
// The cost: a lookup reads one health flag per slot walked, a few slots
// while most backends are healthy.
#include "relay/balancer_maglev.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "relay/balancer_policies.h"

namespace zrelay {
namespace {

// Seeds that make BalancerHash three unrelated functions.
constexpr uint64_t kOffsetSeed = 0x6d61676c65762d6fULL;  // "maglev-o"
constexpr uint64_t kSkipSeed = 0x6d61676c65762d73ULL;    // "maglev-s"
constexpr uint64_t kClientSeed = 0x6d61676c65762d63ULL;  // "maglev-c"

constexpr size_t kMinTableSize = 65537;
constexpr uint32_t kEmpty = UINT32_MAX;

bool IsPrime(size_t n) {
  if (n < 2) return false;
  for (size_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

class MaglevPicker final : public Picker {
 public:
  MaglevPicker(const BackendSet& backends, std::shared_ptr<const MaglevTable> table)
      : backends_(backends), table_holder_(std::move(table)), table_(*table_holder_) {}

  std::optional<size_t> Pick(const Address& client) override {
    const size_t slot = table_.SlotOf(client);
    const uint32_t owner = table_.at(slot);
    if (backends_.healthy(owner)) return owner;
    // Without this check a pool with every backend down would walk the
    // whole table on every accept.
    if (!backends_.AnyHealthy()) return std::nullopt;
    const size_t m = table_.size();
    for (size_t step = 1, s = slot + 1; step < m; ++step, ++s) {
      if (s == m) s = 0;
      const uint32_t next = table_.at(s);
      if (backends_.healthy(next)) return next;
    }
    return std::nullopt;  // the last healthy backend went down meanwhile
  }

 private:
  const BackendSet& backends_;
  // Shared with the Balancer and the other workers' pickers, so a picker
  // stays valid if the Balancer goes first; read through a plain reference.
  std::shared_ptr<const MaglevTable> table_holder_;
  const MaglevTable& table_;
};

class MaglevBalancer final : public Balancer {
 public:
  explicit MaglevBalancer(const BackendSet& backends)
      : backends_(backends),
        table_(std::make_shared<const MaglevTable>(MaglevTable::Build(backends))) {}
  std::unique_ptr<Picker> NewPicker() const override {
    return std::make_unique<MaglevPicker>(backends_, table_);
  }

 private:
  const BackendSet& backends_;
  // Built once, then read by every worker's picker without a lock. Reference
  // counted only when a picker is made, never on a pick.
  std::shared_ptr<const MaglevTable> table_;
};

}  // namespace

uint64_t BalancerHash(std::string_view bytes, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

uint64_t ClientKey(const Address& client) {
  const char* bytes = nullptr;
  size_t length = 0;
  if (client.family() == AF_INET) {
    const auto* sin = reinterpret_cast<const struct sockaddr_in*>(client.sockaddr());
    bytes = reinterpret_cast<const char*>(&sin->sin_addr);
    length = sizeof(sin->sin_addr);
  } else if (client.family() == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const struct sockaddr_in6*>(client.sockaddr());
    bytes = reinterpret_cast<const char*>(&sin6->sin6_addr);
    length = sizeof(sin6->sin6_addr);
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
      bytes += 12;  // ::ffff:a.b.c.d: the last four bytes are the IPv4 address
      length = 4;
    }
  }
  return BalancerHash(std::string_view(bytes, length), kClientSeed);
}

size_t MaglevTable::SizeFor(size_t backends) {
  size_t n = std::max(kMinTableSize, 100 * backends);
  while (!IsPrime(n)) ++n;
  return n;
}

MaglevTable MaglevTable::Build(const BackendSet& backends) {
  const size_t m = SizeFor(backends.size());
  struct Turn {
    std::string name;  // the address text: the backend's identity
    uint32_t index;    // in the BackendSet
    uint32_t weight;
    uint64_t next;  // the next slot of its permutation to try
    uint64_t skip;
    uint64_t credit = 0;
  };
  std::vector<Turn> turns;
  turns.reserve(backends.size());
  uint32_t max_weight = 0;
  for (size_t i = 0; i < backends.size(); ++i) {
    std::string name = backends.address(i).ToString();
    const uint64_t offset = BalancerHash(name, kOffsetSeed) % m;
    const uint64_t skip = BalancerHash(name, kSkipSeed) % (m - 1) + 1;
    turns.push_back({std::move(name), static_cast<uint32_t>(i), backends.weight(i), offset, skip});
    max_weight = std::max(max_weight, backends.weight(i));
  }
  // BackendSet::Create rejects duplicates, so the names order them totally.
  std::sort(turns.begin(), turns.end(),
            [](const Turn& a, const Turn& b) { return a.name < b.name; });

  std::vector<uint32_t> slots(m, kEmpty);
  size_t filled = 0;
  // Every round the heaviest backends claim a slot, so this ends.
  while (filled < m) {
    for (Turn& turn : turns) {
      turn.credit += turn.weight;
      if (turn.credit < max_weight) continue;
      turn.credit -= max_weight;
      while (slots[turn.next] != kEmpty) turn.next = (turn.next + turn.skip) % m;
      slots[turn.next] = turn.index;
      turn.next = (turn.next + turn.skip) % m;
      if (++filled == m) break;
    }
  }
  return MaglevTable(std::move(slots));
}

std::unique_ptr<Balancer> NewMaglevBalancer(const BackendSet& backends) {
  return std::make_unique<MaglevBalancer>(backends);
}

}  // namespace zrelay
