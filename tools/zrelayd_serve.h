// zrelayd's life after start-up: signals read from a signalfd on the main
// thread until a drain is over.
#pragma once

#include <signal.h>

#include <string>

#include "engine/result.h"
#include "relay/relay.h"

namespace zrelay {

// The signals zrelayd handles (SIGTERM, SIGINT, SIGHUP). Block them before
// any thread starts, so every worker inherits the mask and only
// ServeUntilStopped's signalfd sees them.
sigset_t HandledSignals();

// Serves until stopped. The first SIGTERM/SIGINT drains on a thread for
// `grace`; a second one cuts the drain short with Drain(0) from here, which
// closes the remaining pairs (cause drained) and makes the first Drain
// return. SIGHUP logs `on_sighup` and changes nothing. Returns once the drain
// is over, or an error if signals cannot be read at all.
Status ServeUntilStopped(Engine& engine, Duration grace, const std::string& on_sighup);

}  // namespace zrelay
