// ListenerReaper: where a listener goes when it stops taking clients
// (Engine::Reconfigure, Engine::Close) while its pairs still run. A retired
// listener stays whole, since its pairs use its route, pool and TLS
// contexts; when its last pair closes, that pair's worker tells the reaper,
// whose own thread shuts the listener down and destroys it (that takes
// tasks on the workers, which a worker cannot wait for).
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/worker_pool.h"

namespace zrelay {

class EngineListener;

class ListenerReaper {
 public:
  explicit ListenerReaper(WorkerPool& pool) : pool_(pool) {}
  ~ListenerReaper();  // Stop()
  ListenerReaper(const ListenerReaper&) = delete;
  ListenerReaper& operator=(const ListenerReaper&) = delete;

  // Takes `listener`, shut down already (EngineListener::Shutdown), and
  // retires it. Any non-worker thread.
  void Retire(std::unique_ptr<EngineListener> listener);

  // From EngineListener: its last pair or flow has closed. Any thread; the reaper
  // only looks the pointer up, it never reads through it here.
  void LastPairClosed(EngineListener* listener);

  // Engine shutdown, while the loops still run: ends the reaper's thread
  // and shuts down the listeners it still holds (their pairs go with the
  // workers); they are destroyed with the reaper, after the loops stopped.
  void Stop();

 private:
  void Run();

  WorkerPool& pool_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::vector<std::unique_ptr<EngineListener>> retired_;  // guarded by mu_
  std::vector<EngineListener*> done_;  // retired_ with no pair left; guarded by mu_
  bool stopping_ = false;              // guarded by mu_
  std::thread thread_;                 // started with the first retirement
};

}  // namespace zrelay
