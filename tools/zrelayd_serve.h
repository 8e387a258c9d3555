// zrelayd's life after start-up: signals read from a signalfd on the main
// thread until a drain is over.
#pragma once

#include <signal.h>

#include <functional>
#include <string>

#include "engine/result.h"
#include "engine/unique_fd.h"
#include "relay/relay.h"

namespace zrelay {

// The signals zrelayd handles (SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2). Block them before
// any thread starts, so every worker inherits the mask and only
// ServeUntilStopped's signalfd sees them.
sigset_t HandledSignals();

// zrelayd's stop signals, read from a signalfd on the main thread. Open it
// before zrelayd says it is listening, so the descriptors it holds are part
// of what it starts with (tests compare zrelayd's fds with that baseline).
// What SIGHUP, SIGUSR1 and SIGUSR2 do, on the main thread, between two signals.
struct SignalActions {
  std::function<void()> reload;       // SIGHUP
  std::function<void()> reopen_logs;  // SIGUSR1
  std::function<void()> upgrade;      // SIGUSR2
};

class StopSignals {
 public:
  // Needs HandledSignals() blocked already.
  static Result<StopSignals> Open();

  // Serves until stopped. The first SIGTERM/SIGINT drains on a thread for
  // `grace`; a second one cuts the drain short with Drain(0) from here, which
  // closes the remaining pairs (cause drained) and makes the first Drain
  // return. SIGHUP, SIGUSR1 and SIGUSR2 run `actions` (while draining too). Returns
  // once the drain is over.
  void ServeUntilStopped(Engine& engine, Duration grace, const SignalActions& actions);

 private:
  StopSignals(UniqueFd signals, UniqueFd drained)
      : signals_(std::move(signals)), drained_(std::move(drained)) {}
  UniqueFd signals_;  // the handled signals
  UniqueFd drained_;  // the draining thread says it is done
};

}  // namespace zrelay
