// PairOptions at work: checked against the engine's options, then set on a
// new pair's two directions (rate limits, watermarks, filters) along with
// its legs' preread bytes.
#pragma once

#include <string>

#include "engine/clock.h"
#include "relay/direction.h"
#include "relay/relay.h"

namespace zrelay {

// Empty when `options` fit `engine`; else what is wrong, naming the field
// ("pair.high_watermark ...").
std::string PairOptionsError(const PairOptions& options, const EngineOptions& engine);

// Gives each direction its rate limit (a bucket that starts full at `now`),
// watermarks and filter (from options.filter; a filtered direction copies).
// Call once both legs are attached.
void ApplyPairOptions(const PairOptions& options, TimePoint now, Direction& a_to_b,
                      Direction& b_to_a);

// Stages `preread`, bytes already read from `dir`'s source, to be delivered
// ahead of anything read from it from here on. A splice direction copies
// until they are delivered, then splices again.
void StagePreread(Direction& dir, std::string preread);

}  // namespace zrelay
