// Reload tests' peers: backends that answer each client with their own
// pattern (so a client knows, byte for byte, which backend it reached),
// clients one after another on a few threads counting refusals and
// wrong answers, and a client held open half way through its upload.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/address.h"
#include "engine/unique_fd.h"

namespace zrelay::testing {

constexpr uint64_t kUpSeed = 7;
constexpr uint64_t kOldSeed = 100;  // what the first backend answers with
constexpr uint64_t kNewSeed = 200;  // ... and the second
constexpr size_t kClientBytes = 32 << 10;
constexpr size_t kHeldBytes = 256 << 10;
constexpr int kMaxClients = 400;  // per ClientStream thread: the loops' bound

// A blocking loopback backend that reads the client's pattern (kUpSeed) to
// EOF, then answers with as many bytes of pattern `seed` and closes.
class SeededBackend {
 public:
  explicit SeededBackend(uint64_t seed);
  ~SeededBackend();

  const Address& address() const { return address_; }
  int accepted() const { return accepted_.load(); }
  // False once a client's upload was not the pattern.
  bool ok() const { return ok_.load(); }

 private:
  void AcceptLoop();
  void Answer(int fd);

  const uint64_t seed_;
  UniqueFd fd_;
  Address address_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::thread> connections_;  // guarded by mu_
  std::atomic<int> accepted_{0};
  std::atomic<bool> ok_{true};
};

// One client, start to end: `bytes` up with FIN, the answer down.
struct ClientResult {
  int connect_error = 0;
  uint64_t seed = 0;  // kOldSeed, kNewSeed, or 0: a wrong, short or reset answer
};
ClientResult RunClient(const Address& front, size_t bytes = kClientBytes);

// Clients one after the other on a few threads until Stop() (or
// kMaxClients each). Each notes whether Changed() had been called when it
// connected: those must reach the new backend.
class ClientStream {
 public:
  ClientStream(const Address& front, int threads);
  ~ClientStream() { Stop(); }

  void Stop();
  void Changed() { changed_ = true; }
  int done() const { return done_.load(); }
  int done_after_change() const { return done_after_.load(); }

  // Counted over every client; read once stopped.
  int refused = 0;           // connect failed
  int bad = 0;               // connected, but no full answer of either pattern
  int old_seen = 0;          // reached the first backend
  int new_seen = 0;          // reached the second
  int old_after_change = 0;  // reached the first backend, connected after Changed()

 private:
  void Loop();

  const Address front_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> changed_{false};
  std::atomic<int> done_{0};
  std::atomic<int> done_after_{0};
};

// A client half way through its kHeldBytes upload, its backend connection
// made (`backend` accepted one more): finishes when told.
class HeldClient {
 public:
  HeldClient(const Address& front, const SeededBackend& backend);
  bool connected() const { return connected_; }
  // Sends the other half and FIN; the seed of the answer (0: wrong or short).
  uint64_t Finish();
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  bool connected_ = false;
};

}  // namespace zrelay::testing
