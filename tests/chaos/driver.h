// The chaos driver: starts zrelayd, runs its own backend on loopback, and
// pushes many concurrent pairs through, each with a seeded payload and one
// fault (plan.h). Afterwards it checks, per pair, both peers' view (bytes,
// RST vs FIN), zrelayd's --log-closes causes, that zrelayd's descriptors
// are back to their baseline, and its totals and exit after SIGTERM.
//
//   ChaosOptions o;
//   o.zrelayd = FindZrelayd(argv[0]);
//   o.mode = "splice";
//   ChaosReport r = RunChaos(o);
//   if (!r.failures.empty()) ... r.Summary() ...
//
// One thread, one epoll loop, every wait bounded by a deadline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "tests/chaos/plan.h"

namespace zrelay::chaos {

struct ChaosOptions {
  std::string zrelayd;          // path of the binary
  std::string mode = "splice";  // zrelayd --mode
  bool tls = false;             // zrelayd terminates TLS (certificates are minted per run)
  BackendKind backend = BackendKind::kNormal;
  bool clean_only = false;  // only faults after which pairs end normally (limits runs)
  size_t pairs = 500;
  uint64_t seed = 1;
  size_t concurrency = 64;  // pairs in flight at once
  uint64_t max_payload = 1 << 20;
  uint64_t max_stall_payload = 8 << 20;  // sent to a stalled reader (plan.h)
  int workers = 2;
  std::vector<std::string> extra_args;  // more zrelayd flags
  std::vector<std::string> wrapper;     // runs zrelayd under this (e.g. prlimit ... --)
  Duration pair_deadline = seconds(60);
  Duration connect_timeout = seconds(1);  // zrelayd --connect-timeout
};

struct ChaosReport {
  uint64_t seed = 0;
  std::vector<std::string> failures;       // empty: everything held
  std::map<std::string, size_t> faults;    // pairs per fault
  std::map<std::string, size_t> causes;    // --log-closes lines per cause
  std::map<std::string, uint64_t> totals;  // zrelayd's totals line
  size_t exact_pairs = 0;                  // pairs that ended normally, byte-exact both ways
  size_t backend_unidentified = 0;         // backend connections closed before their header came
  int peak_fds = 0;  // the most descriptors zrelayd held, sampled during the run
  std::string Summary() const;
};

ChaosReport RunChaos(const ChaosOptions& options);

// The runs the chaos test makes: every relay mode against a backend that
// behaves, a TLS listener, and the two backends that do not.
struct Scenario {
  std::string name;
  std::string mode;
  bool tls = false;
  BackendKind backend = BackendKind::kNormal;
  double share = 1;  // of the pairs a run of every scenario gives each one
};
const std::vector<Scenario>& Scenarios();
// `options` set up for the scenario called `name`; false when there is none.
bool ApplyScenario(const std::string& name, ChaosOptions* options);

}  // namespace zrelay::chaos
