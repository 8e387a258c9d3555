// The one clock zrelay uses: monotonic, in std::chrono types.
#pragma once

#include <chrono>

namespace zrelay {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::microseconds;

}  // namespace zrelay
