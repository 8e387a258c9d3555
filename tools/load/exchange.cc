#include "tools/load/exchange.h"

#include <algorithm>
#include <array>

namespace zrelay::load {

const uint8_t* Filler() {
  static const auto filler = [] {
    std::array<uint8_t, kFillerSize> a;
    a.fill('q');
    return a;
  }();
  return filler.data();
}

void Exchange::Begin(uint64_t req, uint64_t resp) {
  req_ = req;
  resp_ = resp;
  sent_ = got_ = 0;
  failure_ = IoResult();
}

Exchange::Step Exchange::Run(Transport& io, ClientSession& session) {
  while (sent_ < req_) {
    if (!io.CanWrite()) return Step::kBlocked;
    size_t want = static_cast<size_t>(std::min<uint64_t>(req_ - sent_, kFillerSize));
    IoResult r = io.Write(Filler(), want);
    if (r.status == IoStatus::kBlocked) return Step::kBlocked;
    if (r.status != IoStatus::kOk) {
      failure_ = std::move(r);
      return Step::kFailed;
    }
    sent_ += r.bytes;
    session.counters().bytes_up.Add(r.bytes);
  }
  while (got_ < resp_) {
    if (!io.CanRead()) return Step::kBlocked;
    // Read more than is owed: with one request in flight, any extra byte
    // means the backend's sizes differ from ours, which must not pass as a
    // fast response.
    IoResult r = io.Read(session.scratch(), session.scratch_size());
    if (r.status == IoStatus::kBlocked) return Step::kBlocked;
    if (r.status != IoStatus::kOk) {
      failure_ = std::move(r);
      return Step::kFailed;
    }
    got_ += r.bytes;
    session.counters().bytes_down.Add(r.bytes);
  }
  if (got_ > resp_) {
    failure_ =
        IoResult::Fail(0, "the backend sent " + std::to_string(got_) + " bytes for a --resp of " +
                              std::to_string(resp_) + " (does its --req/--resp match ours?)");
    return Step::kFailed;
  }
  return Step::kDone;
}

}  // namespace zrelay::load
