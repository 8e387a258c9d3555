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

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/relay_test_util.h"
#include "tests/relay/reload_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::ClientStream;
using testing::CloseRecorder;
using testing::HeldClient;
using testing::kHeldBytes;
using testing::kNewSeed;
using testing::kOldSeed;
using testing::Loopback;
using testing::RunClient;
using testing::SeededBackend;
using testing::WaitFor;

constexpr int kClientsPerPhase = 50;
const Duration kPhaseDeadline = seconds(20);

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
  auto engine = testing::StartEngine({.workers = workers});
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

  EXPECT_EQ(RunClient(front).seed, kOldSeed);
  // The address as given to Listen (port 0) is the listener's too.
  st = engine->Reconfigure(*id, ListenTo(Loopback(), new_backend));
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(RunClient(front).seed, kNewSeed);
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
  EXPECT_EQ(RunClient(front).seed, kOldSeed);

  Status st = engine->Reconfigure(*id, ListenTo(front, new_backend));
  ASSERT_TRUE(st.ok()) << st.error().message();
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << "the old listener unlinked the path";
  for (int i = 0; i < 4; ++i) EXPECT_EQ(RunClient(front).seed, kNewSeed);
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
  EXPECT_EQ(RunClient(front).connect_error, ECONNREFUSED);
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
