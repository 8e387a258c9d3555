#include "relay/engine_listener.h"

#include "relay/listener_reaper.h"

namespace zrelay {

void EngineListener::Retire(ListenerReaper& reaper) {
  reaper_ = &reaper;
  DropHold();
}

void EngineListener::DropHold() {
  // The last drop can only come after Retire(), which set reaper_ first;
  // until the reaper hears of it, nothing destroys the listener.
  if (holds_.fetch_sub(1, std::memory_order_acq_rel) == 1) reaper_->LastPairClosed(this);
}

}  // namespace zrelay
