// zrelay-load: see help.cc, or run `zrelay-load --help`.
#include <signal.h>
#include <time.h>

#include <cstdio>
#include <string>

#include "tools/load/config.h"
#include "tools/load/proc_stats.h"
#include "tools/load/report.h"
#include "tools/load/runner.h"

namespace {

int UsageError(const std::string& message) {
  std::fprintf(stderr, "zrelay-load: %s\n(run 'zrelay-load --help' for usage)\n", message.c_str());
  return 2;
}

// SIGINT and SIGTERM are blocked in every thread (the workers inherit the
// mask) and polled here, so an interrupted run still stops cleanly and
// prints what it measured.
sigset_t g_stop_signals;

bool StopRequested() {
  struct timespec zero {};
  return ::sigtimedwait(&g_stop_signals, nullptr, &zero) > 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace zrelay::load;
  auto config = ParseArgs(argc, argv);
  if (!config.ok()) return UsageError(config.error().message());
  if (config->help) {
    std::fputs(HelpText().c_str(), stdout);
    return 0;
  }
  if (auto limit = RaiseFdLimit(); !limit.ok()) {
    std::fprintf(stderr, "zrelay-load: warning: %s\n", limit.error().message().c_str());
  }
  sigemptyset(&g_stop_signals);
  sigaddset(&g_stop_signals, SIGINT);
  sigaddset(&g_stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &g_stop_signals, nullptr);

  RunHooks hooks;
  hooks.interrupted = StopRequested;
  hooks.progress = config->quiet ? nullptr : stderr;

  if (config->mode == Mode::kBackend) {
    const auto start = zrelay::Clock::now();
    auto totals = RunBackend(*config, hooks, [&](const zrelay::Address& address) {
      std::printf("listening on %s (%s%s, %d workers)\n", address.ToString().c_str(),
                  config->udp ? "udp, mode " : "mode ", BackendModeName(config->backend_mode),
                  config->workers);
      std::fflush(stdout);
    });
    if (!totals.ok()) return UsageError(totals.error().message());
    const double seconds = std::chrono::duration<double>(zrelay::Clock::now() - start).count();
    std::printf("%s\n", FormatBackendTotals(*totals, seconds, config->json).c_str());
    return totals->mismatches > 0 ? 1 : 0;
  }

  auto report = RunClient(*config, hooks);
  if (!report.ok()) return UsageError(report.error().message());
  if (config->json) {
    std::printf("%s\n", FormatJson(*report).c_str());
  } else {
    std::fputs(FormatTable(*report).c_str(), stdout);
  }
  return report->ExitCode();
}
