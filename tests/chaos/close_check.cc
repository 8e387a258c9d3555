#include "tests/chaos/close_check.h"

#include <algorithm>
#include <functional>
#include <map>
#include <utility>

namespace zrelay::chaos {

uint32_t CauseBit(const std::string& name) {
  for (size_t i = 0; i < std::size(kCauseNames); ++i) {
    if (name == kCauseNames[i]) return 1u << i;
  }
  return 0;
}

namespace {

// Max flow on a small dense graph (a handful of causes and masks).
int64_t MaxFlow(std::vector<std::vector<int64_t>> cap, size_t s, size_t t) {
  int64_t flow = 0;
  for (;;) {
    std::vector<size_t> prev(cap.size(), SIZE_MAX);
    prev[s] = s;
    std::vector<size_t> queue = {s};
    for (size_t q = 0; q < queue.size() && prev[t] == SIZE_MAX; ++q) {
      for (size_t v = 0; v < cap.size(); ++v) {
        if (prev[v] == SIZE_MAX && cap[queue[q]][v] > 0) {
          prev[v] = queue[q];
          queue.push_back(v);
        }
      }
    }
    if (prev[t] == SIZE_MAX) return flow;
    int64_t push = INT64_MAX;
    for (size_t v = t; v != s; v = prev[v]) push = std::min(push, cap[prev[v]][v]);
    for (size_t v = t; v != s; v = prev[v]) {
      cap[prev[v]][v] -= push;
      cap[v][prev[v]] += push;
    }
    flow += push;
  }
}

// How many of `lines` (count per cause bit index) can be given to distinct
// pairs (count per allowed-cause mask).
int64_t Matchable(const std::map<size_t, int64_t>& lines,
                  const std::map<uint32_t, int64_t>& pairs) {
  const size_t causes = std::size(kCauseNames);
  std::vector<uint32_t> masks;
  for (const auto& [mask, n] : pairs) masks.push_back(mask);
  size_t s = causes + masks.size(), t = s + 1;
  std::vector<std::vector<int64_t>> cap(t + 1, std::vector<int64_t>(t + 1, 0));
  for (const auto& [cause, n] : lines) cap[s][cause] = n;
  for (size_t m = 0; m < masks.size(); ++m) {
    cap[causes + m][t] = pairs.at(masks[m]);
    for (size_t c = 0; c < causes; ++c) {
      if (masks[m] & (1u << c)) cap[c][causes + m] = INT64_MAX / 4;
    }
  }
  return MaxFlow(std::move(cap), s, t);
}

}  // namespace

std::vector<std::string> CheckCloseLines(const std::vector<CloseExpectation>& pairs,
                                         const std::vector<CloseLine>& lines) {
  std::vector<std::string> problems;
  // Done lines against clean pairs, as multisets of (up, down).
  std::map<std::pair<uint64_t, uint64_t>, int64_t> done;
  std::map<uint32_t, int64_t> all_masks, required_masks;
  for (const CloseExpectation& p : pairs) {
    if (p.causes == kDone) {
      ++done[{p.up, p.down}];
    } else {
      ++all_masks[p.causes];
      if (p.required) ++required_masks[p.causes];
    }
  }
  std::map<size_t, int64_t> other;  // cause index -> lines
  int64_t other_total = 0;
  for (const CloseLine& l : lines) {
    uint32_t bit = CauseBit(l.cause);
    if (bit == 0) {
      problems.push_back("unknown close cause: " + l.text);
    } else if (bit == kDone) {
      if (--done[{l.up, l.down}] < 0)
        problems.push_back("done line matches no clean pair: " + l.text);
    } else {
      ++other[static_cast<size_t>(__builtin_ctz(bit))];
      ++other_total;
    }
  }
  for (const auto& [bytes, n] : done) {
    if (n > 0) {
      problems.push_back(std::to_string(n) + " clean pair(s) with " + std::to_string(bytes.first) +
                         " bytes up, " + std::to_string(bytes.second) + " down have no done line");
    }
  }
  // Every non-done line explained by a distinct pair, and every pair that
  // must have a line given one: two matchings that exist together whenever
  // each exists alone (Mendelsohn-Dulmage).
  int64_t explained = Matchable(other, all_masks);
  if (explained < other_total) {
    problems.push_back(std::to_string(other_total - explained) +
                       " close line(s) with a cause no pair allows");
  }
  int64_t required = 0;
  for (const auto& [mask, n] : required_masks) required += n;
  int64_t covered = Matchable(other, required_masks);
  if (covered < required) {
    problems.push_back(std::to_string(required - covered) +
                       " pair(s) zrelayd surely had lack a close line with an allowed cause");
  }
  if (!problems.empty()) {
    std::string seen = "close lines by cause:";
    for (const auto& [cause, n] : other)
      seen += std::string(" ") + kCauseNames[cause] + " " + std::to_string(n);
    problems.push_back(seen);
  }
  return problems;
}

}  // namespace zrelay::chaos
