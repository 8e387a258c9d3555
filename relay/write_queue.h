// WriteQueue: a connection's writes, in the order they were asked for, each
// with the handler that runs once all of it is out and the time by which it
// must be.
#pragma once

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "engine/clock.h"
#include "engine/result.h"
#include "relay/unique_function.h"

namespace zrelay {

using DoneHandler = UniqueFunction<void(Status status)>;

class WriteQueue {
 public:
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }

  // `deadline`: TimePoint::max() for none.
  void Push(std::string data, DoneHandler done, TimePoint deadline);
  // The bytes of the oldest write not yet sent. Not empty().
  std::string_view Front() const;
  // `n` bytes of Front() went out; the handlers of the writes that are now
  // complete are appended to `done` (empty ones too, as nothing).
  void Consume(size_t n, std::vector<DoneHandler>& done);
  // Empties the queue, handing every handler over (for a failure).
  std::vector<DoneHandler> TakeAll();
  // The earliest deadline of a queued write; TimePoint::max() for none.
  TimePoint EarliestDeadline() const;

 private:
  struct Entry {
    std::string data;
    size_t sent = 0;
    DoneHandler done;
    TimePoint deadline;
  };
  std::deque<Entry> entries_;
};

}  // namespace zrelay
