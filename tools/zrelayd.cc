// zrelayd: a TCP relay daemon in front of one backend, built on zrelay.
//
// Runs in the foreground. SIGTERM or SIGINT: stop accepting, let open pairs
// finish for --drain-grace, close the rest, print the totals, exit 0; a
// second SIGTERM or SIGINT closes the remaining pairs at once. SIGHUP is
// logged and ignored. Usage errors exit 2; a setup failure (bind,
// certificates, --user) exits 1.
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "engine/unique_fd.h"
#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "tools/zrelayd_flags.h"
#include "tools/zrelayd_process.h"

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
               "pipes in use %llu, buffers in use %llu, pipe pool exhausted %llu, "
               "accept paused: fd limit %llu, max connections %llu, backend fds exhausted %llu, "
               "auto splice switches %llu\n",
               (unsigned long long)t.accepted, (unsigned long long)t.pairs_closed,
               (unsigned long long)t.connect_failures, (unsigned long long)t.bytes_a_to_b,
               (unsigned long long)t.bytes_b_to_a, (unsigned long long)t.bytes_spliced,
               (unsigned long long)t.bytes_copied, (unsigned long long)t.pipes_in_use,
               (unsigned long long)t.buffers_in_use, (unsigned long long)t.pipe_pool_exhausted,
               (unsigned long long)t.accept_fd_exhausted,
               (unsigned long long)t.accept_paused_max_connections,
               (unsigned long long)t.backend_fd_exhausted, (unsigned long long)t.splice_switches);
}

const char* SignalName(int signo) {
  switch (signo) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
  }
  return "signal";
}

// The signals zrelayd handles, all read from a signalfd on the main thread.
sigset_t HandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

// Serves until stopped. The first SIGTERM/SIGINT drains on a thread for
// `grace`; a second one cuts the drain short with Drain(0) from here, which
// closes the remaining pairs (cause drained) and makes the first Drain
// return. SIGHUP is logged and ignored (there is no configuration file to
// reload). Returns once the drain is over, or an error if signals cannot be
// read at all.
Status ServeUntilStopped(Engine& engine, Duration grace) {
  sigset_t handled = HandledSignals();
  UniqueFd signals(::signalfd(-1, &handled, SFD_CLOEXEC));
  UniqueFd drained(::eventfd(0, EFD_CLOEXEC));
  if (!signals || !drained) return Error::FromErrno(errno, "signalfd/eventfd");
  std::thread drainer;
  bool cut = false;
  for (;;) {
    pollfd fds[2] = {{signals.get(), POLLIN, 0}, {drained.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::perror("zrelayd: poll");
      break;
    }
    if (fds[1].revents != 0) break;  // the drain is over
    signalfd_siginfo info{};
    if (::read(signals.get(), &info, sizeof(info)) != sizeof(info)) continue;
    int signo = static_cast<int>(info.ssi_signo);
    if (signo == SIGHUP) {
      std::fprintf(stderr, "zrelayd: SIGHUP: no configuration file to reload; ignored\n");
    } else if (!drainer.joinable()) {
      std::fprintf(stderr, "zrelayd: %s: draining (grace %lld ms; send it again to stop at once)\n",
                   SignalName(signo),
                   static_cast<long long>(std::chrono::duration_cast<milliseconds>(grace).count()));
      drainer = std::thread([&engine, grace, fd = drained.get()] {
        engine.Drain(grace);
        uint64_t one = 1;
        (void)!::write(fd, &one, sizeof(one));
      });
    } else if (!cut) {
      cut = true;
      std::fprintf(stderr, "zrelayd: second %s: closing the remaining pairs now\n",
                   SignalName(signo));
      engine.Drain(Duration::zero());
    }
    std::fflush(stderr);
  }
  if (drainer.joinable()) drainer.join();
  return Status::Ok();
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

  // Block the handled signals before any thread starts, so every worker
  // inherits the mask and only the signalfd in ServeUntilStopped sees them.
  // A daemon owns its process: ignoring SIGPIPE here is ours to decide (the
  // library only blocks it in its own threads).
  sigset_t handled = HandledSignals();
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto fd_limit = RaiseFdLimit();
  if (fd_limit.ok() && fd_limit->before == fd_limit->after) {
    std::fprintf(stderr, "zrelayd: fd limit %llu (the hard limit already)\n",
                 static_cast<unsigned long long>(fd_limit->after));
  } else if (fd_limit.ok()) {
    std::fprintf(stderr, "zrelayd: fd limit raised from %llu to %llu\n",
                 static_cast<unsigned long long>(fd_limit->before),
                 static_cast<unsigned long long>(fd_limit->after));
  } else {
    std::fprintf(stderr, "zrelayd: warning: %s\n", fd_limit.error().message().c_str());
  }

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
  listen.max_connections = static_cast<size_t>(config.max_connections);
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
  // Bound and every key read: nothing left that needs root.
  if (!config.user.empty()) {
    Status dropped = DropPrivileges(config.user);
    if (!dropped.ok()) {
      std::fprintf(stderr, "zrelayd: %s\n", dropped.error().message().c_str());
      return 1;
    }
    std::fprintf(stderr, "zrelayd: running as user '%s' (uid %u, gid %u)\n", config.user.c_str(),
                 static_cast<unsigned>(::getuid()), static_cast<unsigned>(::getgid()));
  }
  auto bound = engine.value()->ListenAddress(id.value());
  auto limit = engine.value()->MaxConnections(id.value());
  std::fprintf(stderr,
               "zrelayd: listening on %s, backend %s, mode %s, at most %zu connections, %zu "
               "workers\n",
               bound.ok() ? bound->ToString().c_str() : "?", config.backend.ToString().c_str(),
               ModeName(config.engine.mode), limit.ok() ? limit.value() : size_t{0},
               engine.value()->workers());
  std::fflush(stderr);

  if (Status served = ServeUntilStopped(*engine.value(), config.drain_grace); !served.ok()) {
    std::fprintf(stderr, "zrelayd: %s\n", served.error().message().c_str());
    return 1;
  }
  PrintTotals(engine.value()->Stats());
  return 0;
}

}  // namespace
}  // namespace zrelay

int main(int argc, char** argv) { return zrelay::Main(argc, argv); }
