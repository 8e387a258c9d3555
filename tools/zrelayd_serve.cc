#include "tools/zrelayd_serve.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "engine/unique_fd.h"
#include "tools/log/log.h"
#include "tools/zrelayd_notify.h"

namespace zrelay {
namespace {

const char* SignalName(int signo) {
  switch (signo) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGUSR2:
      return "SIGUSR2";
  }
  return "signal";
}

}  // namespace

sigset_t HandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  return set;
}

Result<StopSignals> StopSignals::Open() {
  sigset_t handled = HandledSignals();
  UniqueFd signals(::signalfd(-1, &handled, SFD_CLOEXEC));
  if (!signals) return Error::FromErrno(errno, "signalfd");
  UniqueFd drained(::eventfd(0, EFD_CLOEXEC));
  if (!drained) return Error::FromErrno(errno, "eventfd");
  return StopSignals(std::move(signals), std::move(drained));
}

void StopSignals::ServeUntilStopped(Engine& engine, Duration grace, const SignalActions& actions) {
  std::thread drainer;
  bool cut = false;
  for (;;) {
    pollfd fds[2] = {{signals_.get(), POLLIN, 0}, {drained_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Logf("poll: %s", std::strerror(errno));
      break;
    }
    if (fds[1].revents != 0) break;  // the drain is over
    signalfd_siginfo info{};
    if (::read(signals_.get(), &info, sizeof(info)) != sizeof(info)) continue;
    int signo = static_cast<int>(info.ssi_signo);
    if (signo == SIGHUP) {
      if (actions.reload) actions.reload();
    } else if (signo == SIGUSR1) {
      if (actions.reopen_logs) actions.reopen_logs();
    } else if (signo == SIGUSR2) {
      if (actions.upgrade) actions.upgrade();
    } else if (!drainer.joinable()) {
      NotifyStopping();
      Logf("%s: draining (grace %lld ms; send it again to stop at once)", SignalName(signo),
           static_cast<long long>(std::chrono::duration_cast<milliseconds>(grace).count()));
      drainer = std::thread([&engine, grace, fd = drained_.get()] {
        engine.Drain(grace);
        uint64_t one = 1;
        (void)!::write(fd, &one, sizeof(one));
      });
    } else if (!cut) {
      cut = true;
      Logf("second %s: closing the remaining pairs now", SignalName(signo));
      engine.Drain(Duration::zero());
    }
  }
  if (drainer.joinable()) drainer.join();
}

}  // namespace zrelay
