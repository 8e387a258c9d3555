// The chaos driver from the command line, for long runs and reproductions:
//
//   bazel run -c opt //tests/chaos:chaos -- --scenario splice --pairs 100000 --seed 7
//   bazel run //tests/chaos:chaos -- --scenario all --pairs 3000
//
// Prints a summary per scenario; exits 1 when any check failed.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/chaos/driver.h"
#include "tests/chaos/zrelayd_process.h"

namespace zrelay::chaos {
namespace {

constexpr char kUsage[] =
    "usage: chaos [--scenario NAME|all] [--pairs N] [--seed N] [--concurrency N]\n"
    "             [--max-payload BYTES] [--max-stall-payload BYTES] [--workers N] [--zrelayd PATH] "
    "[-- ZRELAYD_FLAGS...]\n"
    "scenarios: splice copy auto tls black-hole flapping, or all (the pairs are shared out)\n";

bool ParseNumber(const std::string& text, uint64_t* out) {
  char* end = nullptr;
  *out = std::strtoull(text.c_str(), &end, 10);
  return !text.empty() && *end == '\0';
}

int Main(int argc, char** argv) {
  ChaosOptions base;
  base.zrelayd = FindZrelayd(argv[0]);
  std::string scenario = "all";
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--") {
      base.extra_args.assign(argv + i + 1, argv + argc);
      break;
    }
    if (flag == "--help" || flag == "-h" || i + 1 >= argc) {
      std::fputs(kUsage, flag == "--help" || flag == "-h" ? stdout : stderr);
      return flag == "--help" || flag == "-h" ? 0 : 2;
    }
    std::string value = argv[++i];
    uint64_t n = 0;
    bool number = ParseNumber(value, &n);
    if (flag == "--scenario") {
      scenario = value;
    } else if (flag == "--zrelayd") {
      base.zrelayd = value;
    } else if (flag == "--pairs" && number && n > 0) {
      base.pairs = n;
    } else if (flag == "--seed" && number) {
      base.seed = n;
    } else if (flag == "--concurrency" && number && n > 0) {
      base.concurrency = n;
    } else if (flag == "--max-payload" && number && n > 0) {
      base.max_payload = n;
    } else if (flag == "--max-stall-payload" && number && n > 0) {
      base.max_stall_payload = n;
    } else if (flag == "--workers" && number && n > 0 && n <= 64) {
      base.workers = static_cast<int>(n);
    } else {
      std::fprintf(stderr, "chaos: bad flag or value: %s %s\n\n%s", flag.c_str(), value.c_str(),
                   kUsage);
      return 2;
    }
  }
  double shares = 0;
  for (const Scenario& s : Scenarios()) shares += s.share;
  bool failed = false, found = false;
  for (const Scenario& s : Scenarios()) {
    if (scenario != "all" && scenario != s.name) continue;
    found = true;
    ChaosOptions o = base;
    ApplyScenario(s.name, &o);
    if (scenario == "all")
      o.pairs = std::max<size_t>(1, static_cast<size_t>(base.pairs * s.share / shares));
    std::printf("%s: %zu pairs, seed %llu\n", s.name.c_str(), o.pairs, (unsigned long long)o.seed);
    std::fflush(stdout);
    ChaosReport r = RunChaos(o);
    std::printf("%s: %s\n", s.name.c_str(), r.Summary().c_str());
    std::fflush(stdout);
    failed = failed || !r.failures.empty();
  }
  if (!found) {
    std::fprintf(stderr, "chaos: no scenario '%s'\n\n%s", scenario.c_str(), kUsage);
    return 2;
  }
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace zrelay::chaos

int main(int argc, char** argv) { return zrelay::chaos::Main(argc, argv); }
