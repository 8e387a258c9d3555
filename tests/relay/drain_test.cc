// Engine::Drain called again while a Drain runs: zrelayd drains with its
// grace on SIGTERM and calls Drain(0) on a second SIGTERM, from another
// thread. The second call must cut the first one's wait short, and both
// must return once no pair is left. Run under --config=tsan too: the two
// drains share their deadline across threads.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
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

using testing::CloseRecorder;
using testing::MakeLegPair;

constexpr int kPairs = 4;
constexpr size_t kBytes = 64 << 10;
const Duration kLongGrace = seconds(120);

// Reads exactly `len` bytes from blocking `fd` and checks them against
// pattern `seed`. Returns an empty string on success, else what was wrong.
std::string ReadPattern(int fd, uint64_t seed, size_t len) {
  std::string buf(len, '\0');
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::recv(fd, buf.data() + done, len - done, 0);
    if (n <= 0) return "short read after " + std::to_string(done) + " bytes";
    done += static_cast<size_t>(n);
  }
  std::string want(len, '\0');
  testing::FillPattern(seed, 0, want.data(), len);
  return buf == want ? std::string() : "bytes differ from the pattern";
}

TEST(DrainTest, SecondDrainCutsTheFirstOnesWaitAndBothReturn) {
  CloseRecorder closes;  // outlives the engine's callbacks
  auto engine = testing::StartEngine({.workers = 2, .mode = RelayMode::kCopy});
  ASSERT_TRUE(engine.ok()) << engine.error().message();

  // A listener, only to see from outside when the first drain has begun:
  // it stops the listeners after it set its deadline.
  ListenOptions listen;
  listen.address = testing::Loopback();
  listen.backends.push_back(BackendOptions{testing::Loopback(AF_INET, 9), nullptr, {}});
  auto id = (*engine)->Listen(listen);
  ASSERT_TRUE(id.ok()) << id.error().message();
  const Address front = (*engine)->ListenAddress(*id).value();

  // Pairs that never finish on their own: the apps keep both legs open.
  std::vector<testing::LegPair> a(kPairs), b(kPairs);
  for (int i = 0; i < kPairs; ++i) {
    auto la = MakeLegPair(AF_INET);
    auto lb = MakeLegPair(AF_INET);
    ASSERT_TRUE(la.ok() && lb.ok());
    a[i] = std::move(la).value();
    b[i] = std::move(lb).value();
    (*engine)->Pipe(Leg{std::move(a[i].leg)}, Leg{std::move(b[i].leg)}, closes.Callback());
  }
  for (int i = 0; i < kPairs; ++i) {
    ASSERT_EQ(testing::SendPattern(a[i].app.get(), i, kBytes, 16 << 10, /*shut_write=*/false),
              kBytes);
    ASSERT_EQ(ReadPattern(b[i].app.get(), i, kBytes), "") << "pair " << i;
  }
  ASSERT_EQ((*engine)->Stats().total.pairs_open, static_cast<uint64_t>(kPairs));

  std::atomic<bool> first_returned{false};
  std::thread first([&] {
    (*engine)->Drain(kLongGrace);
    first_returned = true;
  });
  // Once the listener refuses, the first drain's deadline is in place.
  ASSERT_TRUE(testing::WaitFor([&] { return !testing::BlockingConnect(front).ok(); }, seconds(20)));
  EXPECT_FALSE(first_returned) << "the first drain must still wait for the open pairs";

  (*engine)->Drain(Duration::zero());
  EXPECT_EQ((*engine)->Stats().total.pairs_open, 0u) << "Drain(0) returns once no pair is left";
  // The first drain wakes on the shorter deadline instead of sleeping out
  // its grace (the bound is far below kLongGrace, not a speed claim).
  EXPECT_TRUE(testing::WaitFor([&] { return first_returned.load(); }, seconds(30)))
      << "the first Drain kept waiting after Drain(0) closed every pair";
  first.join();

  auto closed = closes.WaitFor(kPairs);
  ASSERT_EQ(closed.size(), static_cast<size_t>(kPairs));
  for (const PairStats& s : closed) {
    EXPECT_EQ(s.cause, CloseCause::kDrained) << s.detail;
    EXPECT_EQ(s.a_to_b, kBytes);
  }
  // The apps learn that their pairs were cut: a reset, not a clean EOF.
  for (int i = 0; i < kPairs; ++i) {
    char byte;
    EXPECT_EQ(::recv(a[i].app.get(), &byte, 1, 0), -1);
    EXPECT_EQ(errno, ECONNRESET);
  }
}

TEST(DrainTest, OverlappingDrainKeepsTheEarlierDeadline) {
  // The reverse order: a running Drain(0) is not extended by a later,
  // longer one, and both return with every pair closed.
  CloseRecorder closes;
  auto engine = testing::StartEngine({.workers = 2, .mode = RelayMode::kSplice});
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  std::vector<testing::LegPair> a(kPairs), b(kPairs);
  for (int i = 0; i < kPairs; ++i) {
    auto la = MakeLegPair(AF_INET6);
    auto lb = MakeLegPair(AF_INET6);
    ASSERT_TRUE(la.ok() && lb.ok());
    a[i] = std::move(la).value();
    b[i] = std::move(lb).value();
    (*engine)->Pipe(Leg{std::move(a[i].leg)}, Leg{std::move(b[i].leg)}, closes.Callback());
  }
  ASSERT_TRUE(testing::WaitFor(
      [&] { return (*engine)->Stats().total.pairs_open == static_cast<uint64_t>(kPairs); }));
  std::thread longer([&] { (*engine)->Drain(kLongGrace); });
  (*engine)->Drain(Duration::zero());
  longer.join();  // returns: either it found no pair left or shared the zero deadline
  auto closed = closes.WaitFor(kPairs);
  ASSERT_EQ(closed.size(), static_cast<size_t>(kPairs));
  for (const PairStats& s : closed) EXPECT_EQ(s.cause, CloseCause::kDrained) << s.detail;
  EXPECT_EQ((*engine)->Stats().total.pairs_open, 0u);
}

}  // namespace
}  // namespace zrelay
