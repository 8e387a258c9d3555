// HealthCheckOptions: how often and how strictly a listener's backends are
// checked (ListenOptions::health in relay/relay.h).
#pragma once

#include "engine/clock.h"

namespace zrelay {

// Active checks: a TCP connect (and a TLS handshake when the backend
// originates TLS) to every endpoint each interval.
struct HealthCheckOptions {
  Duration interval = seconds(2);
  Duration timeout = seconds(1);  // < interval
  int fall = 3;                   // consecutive failures mark an endpoint down
  int rise = 2;                   // consecutive successes mark it up again
};

}  // namespace zrelay
