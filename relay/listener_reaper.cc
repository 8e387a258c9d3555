#include "relay/listener_reaper.h"

#include <algorithm>
#include <utility>

#include "relay/engine_listener.h"

namespace zrelay {

ListenerReaper::~ListenerReaper() { Stop(); }

void ListenerReaper::Retire(std::unique_ptr<EngineListener> listener) {
  EngineListener* retiring = listener.get();
  {
    std::lock_guard<std::mutex> lock(mu_);
    retired_.push_back(std::move(listener));
    if (!thread_.joinable() && !stopping_) thread_ = std::thread([this] { Run(); });
  }
  // Outside the lock: with no pair open, this calls LastPairClosed now.
  retiring->Retire(*this);
}

void ListenerReaper::LastPairClosed(EngineListener* listener) {
  std::lock_guard<std::mutex> lock(mu_);
  done_.push_back(listener);
  wake_.notify_one();
}

void ListenerReaper::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !done_.empty(); });
    if (stopping_) return;
    std::vector<std::unique_ptr<EngineListener>> reaped;
    for (EngineListener* done : done_) {
      auto it = std::find_if(retired_.begin(), retired_.end(),
                             [done](const auto& l) { return l.get() == done; });
      reaped.push_back(std::move(*it));
      retired_.erase(it);
    }
    done_.clear();
    lock.unlock();
    // Shutdown again: it ends an ejection timer a failing connect may have
    // set after the retirement.
    for (auto& listener : reaped) listener->Shutdown(pool_);
    reaped.clear();
    lock.lock();
  }
}

void ListenerReaper::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
  // Shut down outside the lock: Shutdown waits for the workers, and a
  // worker whose pair closes takes the lock (LastPairClosed). Nothing
  // removes a listener from retired_ any more.
  std::vector<EngineListener*> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& listener : retired_) left.push_back(listener.get());
  }
  for (EngineListener* listener : left) listener->Shutdown(pool_);
}

}  // namespace zrelay
