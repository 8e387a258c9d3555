#include "relay/write_queue.h"

#include <algorithm>

namespace zrelay {

void WriteQueue::Push(std::string data, DoneHandler done, TimePoint deadline) {
  entries_.push_back(Entry{std::move(data), 0, std::move(done), deadline});
}

std::string_view WriteQueue::Front() const {
  const Entry& e = entries_.front();
  return std::string_view(e.data).substr(e.sent);
}

void WriteQueue::Consume(size_t n, std::vector<DoneHandler>& done) {
  while (!entries_.empty()) {
    Entry& e = entries_.front();
    const size_t take = std::min(n, e.data.size() - e.sent);
    e.sent += take;
    n -= take;
    if (e.sent < e.data.size()) return;
    if (e.done) done.push_back(std::move(e.done));
    entries_.pop_front();
    if (n == 0 && (entries_.empty() || !entries_.front().data.empty())) return;
  }
}

std::vector<DoneHandler> WriteQueue::TakeAll() {
  std::vector<DoneHandler> out;
  for (Entry& e : entries_) {
    if (e.done) out.push_back(std::move(e.done));
  }
  entries_.clear();
  return out;
}

TimePoint WriteQueue::EarliestDeadline() const {
  TimePoint earliest = TimePoint::max();
  for (const Entry& e : entries_) earliest = std::min(earliest, e.deadline);
  return earliest;
}

}  // namespace zrelay
