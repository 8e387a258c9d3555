// `promtool check metrics` (from the Debian package prometheus, which
// tools/setup.sh installs) run over an exposition: Prometheus' own parser
// and linter as the judge of what /metrics serves.
#pragma once

#include <string>

#include "engine/result.h"

namespace zrelay::testing {

// Runs promtool on `exposition`. Ok: promtool accepted it without a lint
// finding. Otherwise the Error holds what promtool said, or that promtool is
// not on PATH.
Status PromtoolCheckMetrics(const std::string& exposition);

}  // namespace zrelay::testing
