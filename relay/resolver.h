// Resolver: a listener's host backends, resolved off the event loops.
//
// At Listen() every host backend is resolved once on the caller's thread: a
// name with no address then fails Listen(), naming the host (a pool that
// starts without a backend it was given is a configuration to fix, not to
// run). After that a thread of the listener's own re-resolves every
// resolve_interval. A name that fails to resolve later keeps its previous
// addresses (a DNS hiccup must not empty the pool); when a name's addresses
// change, the new endpoint list is handed to `on_change` with one line per
// name that changed (or failed).
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/address.h"
#include "engine/clock.h"
#include "engine/result.h"
#include "relay/backend_pool.h"
#include "relay/relay.h"

namespace zrelay {

// getaddrinfo for TCP: every address of `host` with `port`, in the order
// returned, each once. Blocking.
Result<std::vector<Address>> ResolveHost(const std::string& host, int port);

class Resolver {
 public:
  // `endpoints` is set when an address changed.
  using OnChange = std::function<void(const std::vector<std::string>& lines,
                                      std::optional<std::vector<Endpoint>> endpoints)>;

  // `resolve` unset: ResolveHost.
  Resolver(std::vector<BackendOptions> backends, ResolveFunction resolve);
  ~Resolver();  // Stop()
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Resolves every host backend; fails naming a host that has no address.
  Status ResolveAll();
  // The endpoints: literal backends as given, host backends once per
  // address (an address already listed by an earlier host is skipped).
  std::vector<Endpoint> Endpoints() const;
  // Starts re-resolving every `interval` (only when a backend has a host).
  void Start(Duration interval, OnChange on_change);
  // Stops re-resolving: no on_change call after it returns. Idempotent.
  void Stop();

  bool has_hosts() const;

 private:
  void Run(Duration interval);
  void Refresh();

  const std::vector<BackendOptions> backends_;
  const ResolveFunction resolve_;
  std::vector<std::vector<Address>> addresses_;  // per backend (hosts only); Run's thread
  OnChange on_change_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace zrelay
