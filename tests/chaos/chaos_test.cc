// Thousands of pairs through a real zrelayd, with faults, in every relay
// mode, on a TLS listener, and against a backend that never accepts and one
// that flaps. The driver (driver.h) checks both peers of every pair,
// zrelayd's close causes, its descriptors, totals and exit.
//
// Seeded: CHAOS_SEED (bazel test --test_env=CHAOS_SEED=N) replays a run;
// a failure prints the seed and the command line that reproduces it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "tests/chaos/driver.h"
#include "tests/chaos/zrelayd_process.h"

namespace zrelay::chaos {
namespace {

// Pairs per scenario of share 1: about 2,800 in all, a few minutes on two
// cores under ASan.
constexpr size_t kPairs = 600;

uint64_t Seed() {
  const char* env = std::getenv("CHAOS_SEED");
  return env ? std::strtoull(env, nullptr, 10) : 20261130;
}

class ChaosTest : public ::testing::TestWithParam<Scenario> {};

TEST_P(ChaosTest, EveryPairEndsByteExactOrWithItsCause) {
  const Scenario& s = GetParam();
  ChaosOptions o;
  o.zrelayd = FindZrelayd(nullptr);
  ASSERT_TRUE(ApplyScenario(s.name, &o));
  o.pairs = static_cast<size_t>(kPairs * s.share);
  o.seed = Seed();
  o.max_payload = 512 << 10;
  ChaosReport r = RunChaos(o);
  EXPECT_TRUE(r.failures.empty()) << "reproduce: bazel run //tests/chaos:chaos -- --scenario "
                                  << s.name << " --pairs " << o.pairs << " --seed " << o.seed
                                  << " --max-payload " << o.max_payload << "\n"
                                  << r.Summary();
  // The run did what it says: every pair was planned and closed by zrelayd.
  size_t planned = 0, closed = 0;
  for (const auto& [fault, n] : r.faults) planned += n;
  for (const auto& [cause, n] : r.causes) closed += n;
  EXPECT_EQ(planned, o.pairs);
  EXPECT_GT(closed, 0u);
  if (s.backend == BackendKind::kNormal) {
    EXPECT_GT(r.exact_pairs, o.pairs / 4) << r.Summary();
  }
  if (s.tls && s.backend == BackendKind::kNormal) {
    // The client's handshake comes first: garbage and cut ClientHellos never
    // cost a backend connection (every faulted pair that reaches the backend
    // sends its header first).
    EXPECT_EQ(r.backend_unidentified, 0u) << r.Summary();
  }
  if (s.backend == BackendKind::kBlackHole) {
    EXPECT_GT(r.causes["connect-failed"], 0u) << r.Summary();
  }
  std::printf("%s: %s\n", s.name.c_str(), r.Summary().c_str());
}

INSTANTIATE_TEST_SUITE_P(Scenarios, ChaosTest, ::testing::ValuesIn(Scenarios()),
                         [](const ::testing::TestParamInfo<Scenario>& info) {
                           std::string name = info.param.name;
                           for (char& c : name) c = c == '-' ? '_' : c;
                           return name;
                         });

}  // namespace
}  // namespace zrelay::chaos
