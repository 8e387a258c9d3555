// A MetricsSnapshot in the Prometheus text exposition format 0.0.4: what
// zrelayd's GET /metrics answers.
//
//   # HELP zrelay_listener_connections_accepted_total Client connections accepted.
//   # TYPE zrelay_listener_connections_accepted_total counter
//   zrelay_listener_connections_accepted_total{listener="web"} 1042
//
// Every name starts with zrelay_; counters end in _total and units are in
// the name (_bytes, _seconds). Series carry the labels listener, backend
// (the endpoint's address), worker (its index), cause (CloseCauseName),
// side ("client" or "backend": the sender) and reason; zrelay_listener_info
// carries protocol ("tcp" or "udp"). A UDP listener's flows count in the
// connection families, and the zrelay_listener_udp_ families have series
// for UDP listeners only. Every family has its HELP and TYPE lines, also
// when it has no series (no listener yet). README.md lists the families.
#pragma once

#include <string>
#include <string_view>

#include "relay/metrics.h"

namespace zrelay {

// The Content-Type of PrometheusText's output.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// The whole exposition. `start_time_seconds` (Unix time zrelayd started
// serving) becomes zrelay_start_time_seconds, from which uptime follows.
std::string PrometheusText(const MetricsSnapshot& snapshot, double start_time_seconds);

// A label value as the format quotes it: backslash, double quote and line
// feed escaped (\\, \", \n).
std::string EscapeLabelValue(std::string_view value);

}  // namespace zrelay
