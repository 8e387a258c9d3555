// Engine::Reconfigure, Close, ListeningSockets and ListenOptions::
// inherited_sockets on loopback: a listener changes its backends under a
// steady stream of clients without refusing or resetting one, pairs open
// before a change finish on what they started with, and a second engine
// takes over a listener's sockets while the first closes. Run under
// --config=tsan too: clients, workers and the reaper's thread meet here.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::BlockingConnect;
using testing::CloseRecorder;
using testing::Loopback;
using testing::WaitFor;

constexpr uint64_t kUpSeed = 7;
constexpr uint64_t kOldSeed = 100;  // what the first backend answers with
constexpr uint64_t kNewSeed = 200;  // ... and the second
constexpr size_t kClientBytes = 32 << 10;
constexpr size_t kHeldBytes = 256 << 10;
constexpr int kClientsPerPhase = 50;
constexpr int kMaxClients = 400;  // per client thread: the loops' bound
const Duration kPhaseDeadline = seconds(20);

// A blocking backend that reads the client's pattern (kUpSeed) to EOF, then
// answers with as many bytes of its own pattern and closes: the answer says
// which backend a client reached, byte for byte.
class SeededBackend {
 public:
  explicit SeededBackend(uint64_t seed) : seed_(seed) {
    auto fd = ListenOn(Loopback());
    if (!fd.ok()) return;
    fd_ = std::move(fd).value();
    testing::SetBlocking(fd_.get(), true);
    address_ = LocalAddress(fd_.get()).value();
    thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~SeededBackend() {
    ::shutdown(fd_.get(), SHUT_RDWR);  // ends the blocking accept
    if (thread_.joinable()) thread_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (std::thread& t : connections_) t.join();
  }

  const Address& address() const { return address_; }
  int accepted() const { return accepted_.load(); }
  bool ok() const { return ok_.load(); }

 private:
  void AcceptLoop() {
    for (;;) {
      int fd = ::accept(fd_.get(), nullptr, nullptr);
      if (fd < 0) return;
      ++accepted_;
      std::lock_guard<std::mutex> lock(mu_);
      connections_.emplace_back([this, fd] { Answer(fd); });
    }
  }
  void Answer(int fd) {
    testing::Received r = testing::ReceivePattern(fd, kUpSeed);
    if (r.first_mismatch != -1) ok_ = false;
    testing::SendPattern(fd, seed_, r.bytes, 64 << 10, /*shut_write=*/false);
    ::close(fd);
  }

  const uint64_t seed_;
  UniqueFd fd_;
  Address address_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::thread> connections_;  // guarded by mu_
  std::atomic<int> accepted_{0};
  std::atomic<bool> ok_{true};
};

// Reads `len` bytes to EOF from blocking `fd`: the seed of the pattern they
// are (kOldSeed or kNewSeed), or 0 when they are neither, short or long.
uint64_t AnswerSeed(int fd, size_t len) {
  std::string got;
  char buf[64 << 10];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  if (got.size() != len) return 0;
  for (uint64_t seed : {kOldSeed, kNewSeed}) {
    std::string want(len, '\0');
    testing::FillPattern(seed, 0, want.data(), len);
    if (got == want) return seed;
  }
  return 0;
}

// One client, start to end: the backend seed it reached, or an error.
struct ClientResult {
  int connect_error = 0;
  uint64_t seed = 0;  // 0: wrong, short or reset answer
};
ClientResult RunClient(const Address& front, size_t bytes) {
  ClientResult result;
  Result<UniqueFd> fd = BlockingConnect(front);
  if (!fd) {
    result.connect_error = fd.error().code().value();
    return result;
  }
  if (testing::SendPattern(fd->get(), kUpSeed, bytes) != bytes) return result;
  result.seed = AnswerSeed(fd->get(), bytes);
  return result;
}

// Clients one after the other on a few threads until Stop() (or
// kMaxClients each). Each notes whether `changed` was already set when it
// connected: those must reach the new backend.
class ClientStream {
 public:
  ClientStream(const Address& front, int threads) : front_(front) {
    for (int t = 0; t < threads; ++t) threads_.emplace_back([this] { Loop(); });
  }
  ~ClientStream() { Stop(); }

  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  // Marks every client that connects from now on as "after the change".
  void Changed() { changed_ = true; }
  int done() const { return done_.load(); }
  int done_after_change() const { return done_after_.load(); }

  // Counted over every client, once stopped.
  int refused = 0;         // connect failed
  int bad = 0;             // answer neither backend's pattern in full (reset, short, wrong)
  int old_seen = 0;        // reached the first backend
  int new_seen = 0;        // reached the second
  int old_after_change = 0;  // reached the first backend though connected after the change

 private:
  void Loop() {
    for (int i = 0; i < kMaxClients && !stop_; ++i) {
      const bool after = changed_.load();
      ClientResult r = RunClient(front_, kClientBytes);
      std::lock_guard<std::mutex> lock(mu_);
      if (r.connect_error != 0) ++refused;
      if (r.connect_error == 0 && r.seed == 0) ++bad;
      if (r.seed == kOldSeed) ++old_seen;
      if (r.seed == kNewSeed) ++new_seen;
      if (after && r.seed == kOldSeed) ++old_after_change;
      ++done_;
      if (after) ++done_after_;
    }
  }

  const Address front_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> changed_{false};
  std::atomic<int> done_{0};
  std::atomic<int> done_after_{0};
};

// A client connected and half way through its upload, its backend
// connection made: finishes when told, and says which backend answered.
class HeldClient {
 public:
  HeldClient(const Address& front, const SeededBackend& backend) {
    const int before = backend.accepted();
    Result<UniqueFd> fd = BlockingConnect(front);
    if (!fd) return;
    fd_ = std::move(fd).value();
    sent_ = testing::SendPattern(fd_.get(), kUpSeed, kHeldBytes / 2, 64 << 10,
                                 /*shut_write=*/false);
    connected_ = WaitFor([&] { return backend.accepted() > before; }, seconds(10));
  }
  bool connected() const { return connected_ && sent_ == kHeldBytes / 2; }
  // Sends the other half and FIN, then reads the answer.
  uint64_t Finish() {
    char rest[kHeldBytes / 2];
    testing::FillPattern(kUpSeed, kHeldBytes / 2, rest, sizeof(rest));
    if (!testing::WriteAll(fd_.get(), std::string(rest, sizeof(rest)))) return 0;
    ::shutdown(fd_.get(), SHUT_WR);
    return AnswerSeed(fd_.get(), kHeldBytes);
  }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  uint64_t sent_ = 0;
  bool connected_ = false;
};

ListenOptions ListenTo(const Address& address, const SeededBackend& backend,
                       CloseRecorder* closes = nullptr) {
  ListenOptions o;
  o.address = address;
  o.backends.push_back(BackendOptions{backend.address(), nullptr, {}});
  o.max_connections = 256;
  if (closes != nullptr) o.on_close = closes->Callback();
  return o;
}

std::unique_ptr<Engine> StartEngine(int workers) {
  auto engine = Engine::Start({.workers = workers});
  EXPECT_TRUE(engine.ok()) << engine.error().message();
  return engine.ok() ? std::move(engine).value() : nullptr;
}

TEST(ReconfigureTest, NewClientsReachTheNewBackendOpenPairsFinishOnTheOldNoneRefused) {
  SeededBackend old_backend(kOldSeed), new_backend(kNewSeed);
  CloseRecorder closes;
  auto engine = StartEngine(2);
  ASSERT_NE(engine, nullptr);
  auto id = engine->Listen(ListenTo(Loopback(), old_backend, &closes));
  ASSERT_TRUE(id.ok()) << id.error().message();
  const Address front = engine->ListenAddress(*id).value();

  HeldClient held(front, old_backend);
  ASSERT_TRUE(held.connected());
  ClientStream stream(front, 3);
  ASSERT_TRUE(WaitFor([&] { return stream.done() >= kClientsPerPhase; }, kPhaseDeadline));

  // The bound address (the kernel's port) stands for the given port 0.
  CloseRecorder new_closes;
  Status st = engine->Reconfigure(*id, ListenTo(front, new_backend, &new_closes));
  ASSERT_TRUE(st.ok()) << st.error().message();
  stream.Changed();
  EXPECT_EQ(engine->ListenAddress(*id).value().ToString(), front.ToString());
  ASSERT_TRUE(
      WaitFor([&] { return stream.done_after_change() >= kClientsPerPhase; }, kPhaseDeadline));
  stream.Stop();

  EXPECT_EQ(stream.refused, 0);
  EXPECT_EQ(stream.bad, 0);
  EXPECT_EQ(stream.old_after_change, 0);
  EXPECT_GE(stream.old_seen, kClientsPerPhase);
  EXPECT_GE(stream.new_seen, kClientsPerPhase);
  // The pair open across the change still reaches the old backend, in full,
  // and reports through the old listener's on_close.
  EXPECT_EQ(held.Finish(), kOldSeed);
  const size_t old_pairs = static_cast<size_t>(stream.old_seen) + 1;
  std::vector<PairStats> closed = closes.WaitFor(old_pairs);
  ASSERT_EQ(closed.size(), old_pairs);
  bool held_reported = false;
  for (const PairStats& s : closed) {
    EXPECT_EQ(s.cause, CloseCause::kDone) << s.detail;
    EXPECT_EQ(s.backend.ToString(), old_backend.address().ToString());
    if (s.a_to_b == kHeldBytes && s.b_to_a == kHeldBytes) held_reported = true;
  }
  EXPECT_TRUE(held_reported);
  EXPECT_EQ(new_closes.WaitFor(stream.new_seen).size(), static_cast<size_t>(stream.new_seen));
  EXPECT_TRUE(old_backend.ok());
  EXPECT_TRUE(new_backend.ok());
}

TEST(ReconfigureTest, OtherAddressesAreRefusedAndTheListenerRunsOn) {
  SeededBackend old_backend(kOldSeed), new_backend(kNewSeed);
  auto engine = StartEngine(2);
  ASSERT_NE(engine, nullptr);
  auto id = engine->Listen(ListenTo(Loopback(), old_backend));
  ASSERT_TRUE(id.ok()) << id.error().message();
  const Address front = engine->ListenAddress(*id).value();

  ListenOptions moved = ListenTo(Loopback(AF_INET6), new_backend);
  Status st = engine->Reconfigure(*id, moved);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("keeps a listener's addresses"), std::string::npos)
      << st.error().message();
  ListenOptions more = ListenTo(front, new_backend);
  more.extra_addresses.push_back(Loopback(AF_INET6));
  EXPECT_FALSE(engine->Reconfigure(*id, more).ok());
  EXPECT_FALSE(engine->Reconfigure(*id + 1, ListenTo(front, new_backend)).ok());

  EXPECT_EQ(RunClient(front, kClientBytes).seed, kOldSeed);
  // The address as given to Listen (port 0) is the listener's too.
  st = engine->Reconfigure(*id, ListenTo(Loopback(), new_backend));
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(RunClient(front, kClientBytes).seed, kNewSeed);
}

TEST(ReconfigureTest, UnixListenerKeepsItsPathAcrossAReconfigure) {
  SeededBackend old_backend(kOldSeed), new_backend(kNewSeed);
  // Not under $TEST_TMPDIR: Bazel's paths are longer than sun_path allows.
  char dir[] = "/tmp/zrelay-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/reconfigure.sock";
  const Address front = Address::Parse("unix:" + path).value();
  auto engine = StartEngine(2);
  ASSERT_NE(engine, nullptr);
  auto id = engine->Listen(ListenTo(front, old_backend));
  ASSERT_TRUE(id.ok()) << id.error().message();
  EXPECT_EQ(RunClient(front, kClientBytes).seed, kOldSeed);

  Status st = engine->Reconfigure(*id, ListenTo(front, new_backend));
  ASSERT_TRUE(st.ok()) << st.error().message();
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << "the old listener unlinked the path";
  for (int i = 0; i < 4; ++i) EXPECT_EQ(RunClient(front, kClientBytes).seed, kNewSeed);
  engine.reset();
  ::unlink(path.c_str());
  ::rmdir(dir);
}

TEST(ReconfigureTest, CloseRefusesNewClientsWhileOpenPairsFinish) {
  SeededBackend backend(kOldSeed);
  CloseRecorder closes;
  auto engine = StartEngine(2);
  ASSERT_NE(engine, nullptr);
  auto id = engine->Listen(ListenTo(Loopback(), backend, &closes));
  ASSERT_TRUE(id.ok()) << id.error().message();
  const Address front = engine->ListenAddress(*id).value();
  HeldClient held(front, backend);
  ASSERT_TRUE(held.connected());

  Status st = engine->Close(*id);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(RunClient(front, kClientBytes).connect_error, ECONNREFUSED);
  EXPECT_FALSE(engine->ListenAddress(*id).ok());
  EXPECT_FALSE(engine->Close(*id).ok());

  EXPECT_EQ(held.Finish(), kOldSeed);
  std::vector<PairStats> closed = closes.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
  EXPECT_EQ(closed[0].a_to_b, kHeldBytes);
  EXPECT_EQ(closed[0].b_to_a, kHeldBytes);
  EXPECT_TRUE(backend.ok());
}

// A second engine adopts the first one's sockets, then the first closes:
// with fewer workers (one watches both sockets) and with more (a third
// socket joins the SO_REUSEPORT group), no client is refused or cut.
class AdoptTest : public ::testing::TestWithParam<int> {};

TEST_P(AdoptTest, SecondEngineTakesOverTheSocketsWithoutARefusal) {
  SeededBackend old_backend(kOldSeed), new_backend(kNewSeed);
  auto first = StartEngine(2);
  auto second = StartEngine(GetParam());
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  auto first_id = first->Listen(ListenTo(Loopback(), old_backend));
  ASSERT_TRUE(first_id.ok()) << first_id.error().message();
  const Address front = first->ListenAddress(*first_id).value();

  ClientStream stream(front, 3);
  ASSERT_TRUE(WaitFor([&] { return stream.done() >= kClientsPerPhase; }, kPhaseDeadline));
  {
    auto sockets = first->ListeningSockets(*first_id);
    ASSERT_TRUE(sockets.ok()) << sockets.error().message();
    ASSERT_EQ(sockets->size(), 2u);  // one per worker
    ListenOptions adopt = ListenTo(front, new_backend);
    for (const ListeningSocket& s : *sockets) {
      EXPECT_EQ(s.address.ToString(), front.ToString());
      adopt.inherited_sockets.push_back(s.fd.get());
    }
    auto second_id = second->Listen(adopt);
    ASSERT_TRUE(second_id.ok()) << second_id.error().message();
    EXPECT_EQ(second->ListenAddress(*second_id).value().ToString(), front.ToString());
    auto adopted = second->ListeningSockets(*second_id);
    ASSERT_TRUE(adopted.ok());
    EXPECT_EQ(adopted->size(), std::max<size_t>(2, GetParam()));
  }  // our copies close here; each engine holds its own
  ASSERT_TRUE(first->Close(*first_id).ok());
  stream.Changed();
  ASSERT_TRUE(
      WaitFor([&] { return stream.done_after_change() >= kClientsPerPhase; }, kPhaseDeadline));
  stream.Stop();

  EXPECT_EQ(stream.refused, 0);
  EXPECT_EQ(stream.bad, 0);
  EXPECT_EQ(stream.old_after_change, 0);
  EXPECT_GE(stream.new_seen, kClientsPerPhase);
  EXPECT_TRUE(old_backend.ok());
  EXPECT_TRUE(new_backend.ok());
}

INSTANTIATE_TEST_SUITE_P(Workers, AdoptTest, ::testing::Values(1, 3));

TEST(ReconfigureTest, EngineDestroyedWithRetiredListenersHoldingPairs) {
  SeededBackend old_backend(kOldSeed), new_backend(kNewSeed);
  CloseRecorder closes;
  auto engine = StartEngine(2);
  ASSERT_NE(engine, nullptr);
  auto a = engine->Listen(ListenTo(Loopback(), old_backend, &closes));
  auto b = engine->Listen(ListenTo(Loopback(), old_backend, &closes));
  ASSERT_TRUE(a.ok() && b.ok());
  HeldClient reconfigured(engine->ListenAddress(*a).value(), old_backend);
  HeldClient closed(engine->ListenAddress(*b).value(), old_backend);
  ASSERT_TRUE(reconfigured.connected() && closed.connected());
  ASSERT_TRUE(engine->Reconfigure(*a, ListenTo(Loopback(), new_backend, &closes)).ok());
  ASSERT_TRUE(engine->Close(*b).ok());

  engine.reset();  // closes both pairs without on_close; frees the retired listeners
  EXPECT_EQ(closes.count(), 0u);
  for (const HeldClient* held : {&reconfigured, &closed}) {
    char byte;
    EXPECT_LE(::recv(held->fd(), &byte, 1, 0), 0) << "the pair outlived its engine";
  }
}

}  // namespace
}  // namespace zrelay
