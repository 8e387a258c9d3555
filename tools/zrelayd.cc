// zrelayd: a TCP relay daemon in front of one backend, built on zrelay.
//
// Runs in the foreground. SIGTERM or SIGINT: stop accepting, let open pairs
// finish for --drain-grace, close the rest, print the totals, exit 0.
// Usage errors exit 2; a listener that cannot bind exits 1.
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "tools/zrelayd_flags.h"

namespace zrelay {
namespace {

const char* ModeName(RelayMode mode) {
  switch (mode) {
    case RelayMode::kSplice: return "splice";
    case RelayMode::kCopy: return "copy";
    case RelayMode::kAuto: return "auto";
  }
  return "?";
}

void PrintTotals(const EngineStats& s) {
  const WorkerStats& t = s.total;
  std::fprintf(stderr,
               "zrelayd: totals: accepted %llu, pairs closed %llu, connect failures %llu, "
               "bytes client->backend %llu, backend->client %llu (spliced %llu, copied %llu), "
               "pipe pool exhausted %llu, auto splice switches %llu\n",
               (unsigned long long)t.accepted, (unsigned long long)t.pairs_closed,
               (unsigned long long)t.connect_failures, (unsigned long long)t.bytes_a_to_b,
               (unsigned long long)t.bytes_b_to_a, (unsigned long long)t.bytes_spliced,
               (unsigned long long)t.bytes_copied, (unsigned long long)t.pipe_pool_exhausted,
               (unsigned long long)t.splice_switches);
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = ParseZrelaydFlags(args);
  if (!parsed.ok()) {
    std::fprintf(stderr, "zrelayd: %s\n(run 'zrelayd --help' for usage)\n",
                 parsed.error().message().c_str());
    return 2;
  }
  const ZrelaydConfig& config = parsed.value();
  if (config.help) {
    std::fputs(ZrelaydUsage().c_str(), stdout);
    return 0;
  }

  // Block the stop signals before any thread starts, so every worker
  // inherits the mask and only sigwait() below sees them. A daemon owns its
  // process: ignoring SIGPIPE here is ours to decide (the library only blocks
  // it in its own threads).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Certificates and keys are checked before any thread starts. Every SSL
  // holds its own reference to its context, so pairs never outlive these.
  TlsContext client_side, backend_side;
  if (config.tls) {
    auto ctx = BuildServerContext(config.tls_server);
    if (!ctx.ok()) {
      std::fprintf(stderr, "zrelayd: TLS: %s\n", ctx.error().message().c_str());
      return 1;
    }
    client_side = std::move(ctx.value());
  }
  if (config.backend_tls) {
    auto ctx = BuildClientContext(config.tls_backend);
    if (!ctx.ok()) {
      std::fprintf(stderr, "zrelayd: backend TLS: %s\n", ctx.error().message().c_str());
      return 1;
    }
    backend_side = std::move(ctx.value());
  }
  auto engine = Engine::Start(config.engine);
  if (!engine.ok()) {
    std::fprintf(stderr, "zrelayd: %s\n", engine.error().message().c_str());
    return 1;
  }
  ListenOptions listen;
  listen.address = config.listen;
  listen.tls = client_side.get();
  listen.backends.push_back(BackendOptions{config.backend, backend_side.get(), config.tls_backend.sni});
  listen.connect_timeout = config.connect_timeout;
  if (config.log_closes) {
    listen.on_close = [](const PairStats& s) {
      std::fprintf(stderr, "zrelayd: pair closed on worker %zu: %s, %llu bytes up, %llu down%s%s\n",
                   s.worker, CloseCauseName(s.cause), (unsigned long long)s.a_to_b,
                   (unsigned long long)s.b_to_a, s.detail.empty() ? "" : ": ", s.detail.c_str());
    };
  }
  auto id = engine.value()->Listen(listen);
  if (!id.ok()) {
    std::fprintf(stderr, "zrelayd: %s\n", id.error().message().c_str());
    return 1;
  }
  auto bound = engine.value()->ListenAddress(id.value());
  std::fprintf(stderr, "zrelayd: listening on %s, backend %s, mode %s, %zu workers\n",
               bound.ok() ? bound->ToString().c_str() : "?", config.backend.ToString().c_str(),
               ModeName(config.engine.mode), engine.value()->workers());
  std::fflush(stderr);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "zrelayd: %s: draining (grace %lld ms)\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
               (long long)std::chrono::duration_cast<milliseconds>(config.drain_grace).count());
  engine.value()->Drain(config.drain_grace);
  PrintTotals(engine.value()->Stats());
  return 0;
}

}  // namespace
}  // namespace zrelay

int main(int argc, char** argv) { return zrelay::Main(argc, argv); }
