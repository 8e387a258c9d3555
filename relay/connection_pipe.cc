// Connection::Pipe: two Connections of one worker become a relayed pair.
#include <cerrno>
#include <memory>
#include <string>
#include <utility>

#include "relay/connection_impl.h"
#include "relay/pair.h"
#include "relay/worker.h"

namespace zrelay {
namespace {

// Why `c` cannot become a pair leg now; empty: it can.
std::string Unpipeable(const ConnectionImpl& c) {
  if (c.broken()) return "it failed earlier: " + c.broken()->message();
  return c.Busy();
}

// Closes `connection` on its own worker's thread.
void DropOnItsWorker(ConnectionPtr connection) {
  auto* impl = static_cast<ConnectionImpl*>(connection.get());
  EventLoop& loop = impl->owner().loop();
  if (loop.InLoopThread()) return;  // `connection` goes out of scope here
  auto box = std::make_shared<ConnectionPtr>(std::move(connection));
  loop.Post([box] { box->reset(); });
}

}  // namespace

void Connection::Pipe(ConnectionPtr a, ConnectionPtr b, OnClose on_close,
                      const PairOptions& options) {
  auto* ca = static_cast<ConnectionImpl*>(a.get());
  auto* cb = static_cast<ConnectionImpl*>(b.get());
  ZR_CHECK(ca != nullptr && cb != nullptr, "Connection::Pipe needs two connections");
  Worker& worker = ca->owner();
  std::string problem;
  if (&cb->owner() != &worker) {
    problem = "leg A is on worker " + std::to_string(ca->worker()) + ", leg B on worker " +
              std::to_string(cb->worker()) + " (both must be on one worker)";
  } else if (std::string why = Unpipeable(*ca); !why.empty()) {
    problem = "leg A (" + ca->peer().ToString() + "): " + why;
  } else if (std::string why_b = Unpipeable(*cb); !why_b.empty()) {
    problem = "leg B (" + cb->peer().ToString() + "): " + why_b;
  }
  if (!problem.empty()) {
    PairStats stats;
    stats.cause = CloseCause::kError;
    stats.error = EINVAL;
    stats.detail = "Connection::Pipe: " + problem;
    stats.worker = worker.index();
    DropOnItsWorker(std::move(b));
    a.reset();
    // From the loop, as a pair's on_close would come.
    worker.loop().Post([on_close = std::move(on_close), stats = std::move(stats)] {
      if (on_close) on_close(stats);
    });
    return;
  }

  ListenerTie tie_a, tie_b;
  Leg leg_a = ca->TakeLeg(tie_a);
  Leg leg_b = cb->TakeLeg(tie_b);
  // A listener's client holds its slot (and its listener) until the pair
  // it became is gone, and the pair counts in that listener's metrics.
  // Its stats name both peers, as a listener pair's do.
  PairOrigin origin{tie_a.counters ? tie_a.counters : tie_b.counters, ca->peer(), cb->peer()};
  OnClose done = [on_close = std::move(on_close), release_a = std::move(tie_a.release),
                  release_b = std::move(tie_b.release)](const PairStats& stats) {
    if (on_close) on_close(stats);
    if (release_a) release_a();
    if (release_b) release_b();  // last: the listener may be gone from here on
  };
  a.reset();
  b.reset();
  Pair::Start(worker, std::move(leg_a), std::move(leg_b), std::move(done), options, origin);
}

}  // namespace zrelay
