// zrelayd at its limits, under many concurrent pairs: out of descriptors at
// accept (run under prlimit), and out of pipes in splice mode. Every pair
// must still end byte-exact, and the pressure must show in what zrelayd
// reports.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "tests/chaos/driver.h"
#include "tests/chaos/zrelayd_process.h"

namespace zrelay::chaos {
namespace {

uint64_t Seed() {
  const char* env = std::getenv("CHAOS_SEED");
  return env ? std::strtoull(env, nullptr, 10) : 20261130;
}

// ThreadSanitizer makes zrelayd and the driver several times slower; with
// full-size stalls, pairs queued behind the connection limit missed their
// deadline. Fewer and smaller pairs still cross every path under TSan; the
// full size runs in the optimized and ASan builds.
#if defined(__SANITIZE_THREAD__)
constexpr uint64_t kShrink = 2;
#else
constexpr uint64_t kShrink = 1;
#endif

ChaosOptions NormalPairs(const std::string& mode) {
  ChaosOptions o;
  o.zrelayd = FindZrelayd(nullptr);
  o.mode = mode;
  o.clean_only = true;  // stalls hold pipes and descriptors longer
  o.pairs = 300 / kShrink;
  o.concurrency = 200 / kShrink;
  o.max_payload = 256 << 10;
  o.max_stall_payload = (8 << 20) / (kShrink * kShrink);
  o.seed = Seed();
  return o;
}

std::string Reproduce(const ChaosOptions& o, const ChaosReport& r) {
  std::string flags;
  for (const std::string& a : o.extra_args) flags += " " + a;
  return "seed " + std::to_string(o.seed) + " (CHAOS_SEED), zrelayd flags" + flags + "\n" +
         r.Summary();
}

// With a descriptor limit a few pairs above its baseline and
// --max-connections set past what fits (an operator overriding the derived
// limit), zrelayd runs out at accept4 and at the backend's socket() (EMFILE)
// again and again; clients wait in the listen queue until pairs close and
// descriptors come back.
TEST(LimitsTest, OutOfDescriptorsAtAcceptEveryPairStillByteExact) {
#if defined(__SANITIZE_ADDRESS__)
  // UBSan's vptr check probes a vtable through a pipe (its runtime's
  // IsAccessibleMemoryRange); with no descriptor left that probe fails and
  // every first-time check reports a false "invalid vptr". Out of
  // descriptors is therefore tested on the optimized build only.
  GTEST_SKIP() << "sanitizer runtimes need free descriptors";
#endif
  constexpr int kNoFile = 64;
  ChaosOptions o = NormalPairs("copy");
  o.workers = 1;
  o.wrapper = {"prlimit", "--nofile=" + std::to_string(kNoFile) + ":" + std::to_string(kNoFile),
               "--"};
  o.extra_args = {"--max-connections", "1000"};
  ChaosReport r = RunChaos(o);
  EXPECT_TRUE(r.failures.empty()) << Reproduce(o, r);
  EXPECT_EQ(r.exact_pairs, o.pairs) << Reproduce(o, r);
  // The limit was reached: zrelayd held every descriptor it may have, and
  // counted running out.
  EXPECT_EQ(r.peak_fds, kNoFile) << Reproduce(o, r);
  EXPECT_GT(r.totals["accept fd exhausted"] + r.totals["backend fds exhausted"], 0u)
      << Reproduce(o, r);
}

// The same limit with the derived --max-connections: zrelayd stops accepting
// before descriptors run out, so no client is accepted only to be reset.
TEST(LimitsTest, DerivedMaxConnectionsPausesBeforeDescriptorsRunOut) {
  // About 50 pairs fit (two sockets each, after zrelayd's own fds and the
  // spare eighth), well below the pairs in flight.
  constexpr int kNoFile = 128;
  ChaosOptions o = NormalPairs("copy");
  o.workers = 1;
  o.wrapper = {"prlimit", "--nofile=" + std::to_string(kNoFile) + ":" + std::to_string(kNoFile),
               "--"};
  ChaosReport r = RunChaos(o);
  EXPECT_TRUE(r.failures.empty()) << Reproduce(o, r);
  EXPECT_EQ(r.exact_pairs, o.pairs) << Reproduce(o, r);
  EXPECT_LT(r.peak_fds, kNoFile) << Reproduce(o, r);
  EXPECT_GT(r.totals["accept paused at max connections"], 0u) << Reproduce(o, r);
  EXPECT_EQ(r.totals["accept fd exhausted"], 0u) << Reproduce(o, r);
  EXPECT_EQ(r.totals["backend fds exhausted"], 0u) << Reproduce(o, r);
}

// One pipe per worker for hundreds of concurrent pairs, some with a stalled
// reader that keeps its pipe full: directions that find the pool dry copy
// instead, and zrelayd counts each time.
TEST(LimitsTest, PipePoolDryFallsBackToCopyAndIsCounted) {
  ChaosOptions o = NormalPairs("splice");
  o.extra_args = {"--pipe-pool", "1"};
  // A stall must outgrow the sockets' buffers to keep a pipe full.
  o.max_stall_payload = 8 << 20;
  ChaosReport r = RunChaos(o);
  EXPECT_TRUE(r.failures.empty()) << Reproduce(o, r);
  EXPECT_EQ(r.exact_pairs, o.pairs) << Reproduce(o, r);
  EXPECT_GT(r.totals["pipe pool exhausted"], 0u) << Reproduce(o, r);
  EXPECT_GT(r.totals["spliced"], 0u) << Reproduce(o, r);
  EXPECT_GT(r.totals["copied"], 0u) << Reproduce(o, r);
}

}  // namespace
}  // namespace zrelay::chaos
