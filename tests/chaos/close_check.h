// Matches zrelayd's --log-closes lines to the pairs a run made. The lines
// do not name their pair, so the check is a matching: every "done" line
// must be some clean pair's exact byte counts, every other line must be a
// cause some pair allows, each pair takes at most one line, and every pair
// that zrelayd surely accepted takes one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/chaos/zrelayd_process.h"

namespace zrelay::chaos {

// Bit i stands for kCauseNames[i].
inline constexpr const char* kCauseNames[] = {"done",           "reset",   "timeout",  "error",
                                              "connect-failed", "drained", "truncated"};
uint32_t CauseBit(const std::string& name);  // 0 for an unknown name
inline const uint32_t kDone = 1u << 0, kReset = 1u << 1, kConnectFailed = 1u << 4,
                      kDrained = 1u << 5;
// Any cause but done and drained (nothing is open when zrelayd is stopped).
inline const uint32_t kNotDone = 0x7fu & ~kDone & ~kDrained;

struct CloseExpectation {
  uint32_t causes = 0;    // allowed causes; kDone alone means up/down are exact
  bool required = false;  // zrelayd surely had this pair, so a line must exist
  uint64_t up = 0;
  uint64_t down = 0;
};

// Returns what does not match, one message per problem; empty when it does.
std::vector<std::string> CheckCloseLines(const std::vector<CloseExpectation>& pairs,
                                         const std::vector<CloseLine>& lines);

}  // namespace zrelay::chaos
