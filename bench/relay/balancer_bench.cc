// Balancer micro benchmarks: the cost of one pick per policy, and of
// building a Maglev table.
//
//   bazel run -c opt //bench/relay:balancer_bench
//
// BM_Pick/<policy>/<backends>: one Pick() for a client address taken in turn
// from 4,096 IPv4 addresses (Maglev hashes them; the others ignore them),
// with every backend healthy and weights 1, 2, 3, 1, 2, 3, ... No pair is
// leased, so least-conn scans equal counters (its ties, round-robin).
// BM_PickQuarterDown/<policy>/<backends>: the same with every fourth backend
// unhealthy, which round-robin and least-conn skip in their scan and Maglev
// walks past in its table.
// BM_MaglevBuild/<backends>: MaglevTable::Build for that many backends (a
// table of 65,537 slots up to 655 backends, then 100 per backend).
#include <benchmark/benchmark.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "relay/balancer.h"
#include "relay/balancer_maglev.h"

namespace zrelay {
namespace {

constexpr size_t kClients = 4096;  // a power of two: the index wraps with a mask

// Aborts on what cannot happen with these backend lists, so that the smoke
// test, which only sees the exit status, fails on it.
void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "balancer_bench: %s\n", what);
  std::abort();
}

// `n` backends 10.<i>:80 with weights 1, 2, 3 repeating, every
// `down_every`-th one unhealthy (0: none).
std::unique_ptr<BackendSet> Backends(size_t n, size_t down_every) {
  std::vector<BackendSpec> specs;
  for (size_t i = 0; i < n; ++i) {
    struct sockaddr_in sin {};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(80);
    sin.sin_addr.s_addr = htonl(0x0a000000 + static_cast<uint32_t>(i) + 1);
    specs.push_back({Address(reinterpret_cast<const struct sockaddr*>(&sin), sizeof(sin)),
                     static_cast<uint32_t>(i % 3 + 1)});
  }
  Result<std::unique_ptr<BackendSet>> set = BackendSet::Create(std::move(specs));
  Check(set.ok(), "backend list rejected");
  if (down_every != 0) {
    for (size_t i = 0; i < n; i += down_every) (*set)->SetHealthy(i, false);
  }
  return std::move(set).value();
}

std::vector<Address> Clients() {
  std::vector<Address> out;
  for (uint32_t i = 0; i < kClients; ++i) {
    struct sockaddr_in sin {};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(40000 + i % 20000));
    sin.sin_addr.s_addr = htonl(0xc0a80000 + i * 7919);  // spread over 192.168/16 and beyond
    out.emplace_back(reinterpret_cast<const struct sockaddr*>(&sin), sizeof(sin));
  }
  return out;
}

void RunPicks(benchmark::State& state, BalancePolicy policy, size_t down_every) {
  std::unique_ptr<BackendSet> backends = Backends(static_cast<size_t>(state.range(0)), down_every);
  std::unique_ptr<Balancer> balancer = Balancer::Create(policy, *backends);
  std::unique_ptr<Picker> picker = balancer->NewPicker();
  const std::vector<Address> clients = Clients();
  size_t i = 0;
  for (auto _ : state) {
    std::optional<size_t> pick = picker->Pick(clients[i++ & (kClients - 1)]);
    benchmark::DoNotOptimize(pick);
    Check(pick.has_value(), "no backend picked with healthy ones in the list");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Pick(benchmark::State& state, BalancePolicy policy) { RunPicks(state, policy, 0); }
void BM_PickQuarterDown(benchmark::State& state, BalancePolicy policy) {
  RunPicks(state, policy, 4);
}

BENCHMARK_CAPTURE(BM_Pick, round_robin, BalancePolicy::kRoundRobin)->Arg(3)->Arg(16)->Arg(128);
BENCHMARK_CAPTURE(BM_Pick, least_conn, BalancePolicy::kLeastConn)->Arg(3)->Arg(16)->Arg(128);
BENCHMARK_CAPTURE(BM_Pick, maglev, BalancePolicy::kMaglev)->Arg(3)->Arg(16)->Arg(128);
BENCHMARK_CAPTURE(BM_PickQuarterDown, round_robin, BalancePolicy::kRoundRobin)->Arg(16);
BENCHMARK_CAPTURE(BM_PickQuarterDown, least_conn, BalancePolicy::kLeastConn)->Arg(16);
BENCHMARK_CAPTURE(BM_PickQuarterDown, maglev, BalancePolicy::kMaglev)->Arg(16);

void BM_MaglevBuild(benchmark::State& state) {
  std::unique_ptr<BackendSet> backends = Backends(static_cast<size_t>(state.range(0)), 0);
  for (auto _ : state) {
    MaglevTable table = MaglevTable::Build(*backends);
    benchmark::DoNotOptimize(table.at(0));
  }
  state.counters["slots"] = static_cast<double>(MaglevTable::SizeFor(backends->size()));
}
BENCHMARK(BM_MaglevBuild)->Arg(3)->Arg(16)->Arg(128)->Arg(1000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace zrelay
