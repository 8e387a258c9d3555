// Scale tests through Engine::Pipe(), for splice, copy and auto:
//
//  - 4,000 concurrent pairs, all on loopback TCP (16,000 sockets), driven by
//    ONE test thread with epoll, each finishing byte-exact with kDone;
//  - a slow reader while 1 GiB is pushed: the relay holds at most one pipe or
//    ring per direction, and this process's RSS stays flat.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::FillPattern;

// Deadlines are doubled under AddressSanitizer (GCC defines
// __SANITIZE_ADDRESS__, clang has __has_feature).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#else
constexpr bool kAsan = false;
#endif

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// ---- 4,000 pairs ------------------------------------------------------------

constexpr size_t kPairs = 4000;
// Sockets per pair: client app, leg A, leg B, backend app.
constexpr size_t kFdsPerPair = 4;

// One app end (client or backend) of one pair, driven by the epoll loop.
//  client:  send request, SHUT_WR, read the reply to EOF, close.
//  backend: read the request to EOF, send the reply, close.
struct AppEnd {
  UniqueFd fd;
  bool client = false;
  uint64_t send_seed = 0, send_size = 0, sent = 0;
  uint64_t recv_seed = 0, recv_size = 0, received = 0;
  bool eof = false;
  bool shut = false;
  bool done = false;
  std::string failure;  // empty while all is well

  void Fail(const std::string& what) {
    if (failure.empty()) failure = what;
    done = true;
    fd.Reset();
  }

  // Makes all the progress the socket allows now (edge-triggered: until
  // EAGAIN). `buf`/`want` are scratch space of `cap` bytes.
  void Step(char* buf, char* want, size_t cap) {
    if (done) return;
    while (!eof) {
      ssize_t n = ::recv(fd.get(), buf, cap, 0);
      if (n == 0) {
        eof = true;
        if (received != recv_size) {
          return Fail("EOF after " + std::to_string(received) + " of " + std::to_string(recv_size) +
                      " bytes");
        }
        break;
      }
      if (n < 0) {
        if (errno == EAGAIN) break;
        if (errno == EINTR) continue;
        return Fail(std::string("recv: ") + std::strerror(errno));
      }
      if (received + static_cast<uint64_t>(n) > recv_size) return Fail("more bytes than sent");
      FillPattern(recv_seed, received, want, static_cast<size_t>(n));
      if (std::memcmp(buf, want, static_cast<size_t>(n)) != 0) {
        return Fail("wrong bytes near offset " + std::to_string(received));
      }
      received += static_cast<uint64_t>(n);
    }
    // The backend replies only once the request is complete.
    if (client || eof) {
      while (sent < send_size) {
        size_t len = static_cast<size_t>(std::min<uint64_t>(cap, send_size - sent));
        FillPattern(send_seed, sent, buf, len);
        ssize_t n = ::send(fd.get(), buf, len, MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EAGAIN) return;
          if (errno == EINTR) continue;
          return Fail(std::string("send: ") + std::strerror(errno));
        }
        sent += static_cast<uint64_t>(n);
      }
      if (!shut) {
        shut = true;
        if (client) ::shutdown(fd.get(), SHUT_WR);
      }
    }
    if (eof && sent == send_size) {
      done = true;
      fd.Reset();  // the backend's close is its FIN; the client is finished
    }
  }
};

// A connected loopback TCP pair from `listener`: (connecting end, accepted
// end), both non-blocking.
Result<std::pair<UniqueFd, UniqueFd>> Connect(int listener, const Address& at) {
  Result<UniqueFd> c = testing::BlockingConnect(at);
  if (!c) return c.error();
  struct pollfd p {
    listener, POLLIN, 0
  };
  if (::poll(&p, 1, 5000) != 1) return Error::FromErrno(ETIMEDOUT, "accept");
  UniqueFd s(::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!s) return Error::FromErrno(errno, "accept4");
  SetNonBlocking(c->get());
  return std::make_pair(std::move(c).value(), std::move(s));
}

class RelayScaleTest : public ::testing::TestWithParam<RelayMode> {};

// 4,000 pairs at once, all sockets loopback TCP: the app ends are the
// connecting sockets, the legs their accepted peers (one listener per test,
// so 8,000 ephemeral ports of 28,000 are used, and a fresh destination port
// per mode keeps earlier TIME_WAITs out of the way).
TEST_P(RelayScaleTest, FourThousandConcurrentPairsFinishByteExact) {
  const size_t limit = testing::RaiseFdLimit();
  // 16,000 sockets, the relay's pipes (capped below) and a margin.
  ASSERT_GE(limit, kPairs * kFdsPerPair + 1500)
      << "RLIMIT_NOFILE hard limit " << limit << " is too low for " << kPairs << " pairs";

  EngineOptions options;
  options.workers = 2;
  options.mode = GetParam();
  options.pipe_size = 64 << 10;
  options.pipe_pool_cap = 128;  // at most 2 x 128 pipes = 512 fds
  auto started = testing::StartEngine(options);
  ASSERT_TRUE(started.ok()) << started.error().message();
  std::unique_ptr<Engine> engine = std::move(started.value());

  ListenSocketOptions lo;
  lo.backlog = 1024;
  lo.reuse_port = false;
  auto listener = ListenOn(testing::Loopback(AF_INET), lo);
  ASSERT_TRUE(listener.ok()) << listener.error().message();
  auto bound = LocalAddress(listener->get());
  ASSERT_TRUE(bound.ok());

  const TimePoint start = Clock::now();
  const TimePoint deadline = start + seconds(kAsan ? 120 : 60);
  std::mt19937_64 rng(0xca1e + static_cast<int>(GetParam()));
  std::vector<AppEnd> ends(2 * kPairs);  // [2i] client, [2i + 1] backend
  std::vector<UniqueFd> legs_a(kPairs), legs_b(kPairs);
  uint64_t total_up = 0, total_down = 0;
  for (size_t i = 0; i < kPairs; ++i) {
    auto a = Connect(listener->get(), *bound);
    ASSERT_TRUE(a.ok()) << "pair " << i << ": " << a.error().message();
    auto b = Connect(listener->get(), *bound);
    ASSERT_TRUE(b.ok()) << "pair " << i << ": " << b.error().message();
    const uint64_t up = 4096 + rng() % (60 << 10);  // 4..64 KiB each way
    const uint64_t down = 4096 + rng() % (60 << 10);
    total_up += up;
    total_down += down;
    AppEnd& client = ends[2 * i];
    client.fd = std::move(a->first);
    client.client = true;
    client.send_seed = 1'000'000 + i;
    client.send_size = up;
    client.recv_seed = 2'000'000 + i;
    client.recv_size = down;
    AppEnd& backend = ends[2 * i + 1];
    backend.fd = std::move(b->first);
    backend.send_seed = 2'000'000 + i;
    backend.send_size = down;
    backend.recv_seed = 1'000'000 + i;
    backend.recv_size = up;
    legs_a[i] = std::move(a->second);
    legs_b[i] = std::move(b->second);
  }
  listener->Reset();
  const Duration setup = Clock::now() - start;

  // Each pair reports into its own slot, so byte counts are checked per pair.
  std::mutex mu;
  std::vector<PairStats> closed(kPairs);
  std::vector<int> closed_count(kPairs, 0);
  std::atomic<size_t> closed_total{0};
  for (size_t i = 0; i < kPairs; ++i) {
    engine->Pipe(Leg{std::move(legs_a[i])}, Leg{std::move(legs_b[i])}, [&, i](const PairStats& s) {
      std::lock_guard<std::mutex> lock(mu);
      closed[i] = s;
      ++closed_count[i];
      ++closed_total;
    });
  }
  // All 4,000 are open at once before a single byte is sent.
  ASSERT_TRUE(testing::WaitFor([&] { return engine->Stats().total.pairs_open == kPairs; },
                               seconds(30), milliseconds(10)))
      << "open: " << engine->Stats().total.pairs_open;

  // One thread, one epoll set, 8,000 app ends.
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  ASSERT_TRUE(ep.valid());
  for (size_t k = 0; k < ends.size(); ++k) {
    struct epoll_event ev {};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = k;
    ASSERT_EQ(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, ends[k].fd.get(), &ev), 0) << k;
  }
  constexpr size_t kScratch = 64 << 10;
  std::vector<char> buf(kScratch), want(kScratch);
  std::vector<struct epoll_event> events(1024);
  size_t done = 0;
  for (int turn = 0; turn < 10'000'000 && done < ends.size() && Clock::now() < deadline; ++turn) {
    int n = ::epoll_wait(ep.get(), events.data(), static_cast<int>(events.size()), 100);
    for (int e = 0; e < n; ++e) {
      AppEnd& end = ends[events[e].data.u64];
      if (end.done) continue;
      end.Step(buf.data(), want.data(), kScratch);  // closing the fd leaves the set
      if (end.done) ++done;
    }
  }
  const Duration transfer = Clock::now() - start - setup;
  size_t failures = 0;
  for (size_t k = 0; k < ends.size(); ++k) {
    const AppEnd& end = ends[k];
    if (end.done && end.failure.empty()) continue;
    if (++failures <= 10) {
      ADD_FAILURE() << (end.client ? "client " : "backend ") << k / 2 << ": "
                    << (end.failure.empty() ? "unfinished" : end.failure) << " (sent " << end.sent
                    << "/" << end.send_size << ", received " << end.received << "/" << end.recv_size
                    << ")";
    }
  }
  EXPECT_EQ(failures, 0u);
  EXPECT_EQ(done, ends.size());

  ASSERT_TRUE(testing::WaitFor([&] { return closed_total.load() == kPairs; }, seconds(30)))
      << closed_total.load() << " of " << kPairs << " pairs closed";
  std::lock_guard<std::mutex> lock(mu);
  size_t wrong = 0;
  for (size_t i = 0; i < kPairs; ++i) {
    const PairStats& s = closed[i];
    bool ok = closed_count[i] == 1 && s.cause == CloseCause::kDone &&
              s.a_to_b == ends[2 * i].send_size && s.b_to_a == ends[2 * i + 1].send_size;
    if (!ok && ++wrong <= 10) {
      ADD_FAILURE() << "pair " << i << ": on_close x" << closed_count[i] << " cause "
                    << CloseCauseName(s.cause) << " (" << s.detail << ") a_to_b " << s.a_to_b << "/"
                    << ends[2 * i].send_size << " b_to_a " << s.b_to_a << "/"
                    << ends[2 * i + 1].send_size;
    }
  }
  EXPECT_EQ(wrong, 0u);

  EngineStats stats = engine->Stats();
  EXPECT_EQ(stats.total.pairs_open, 0u);
  EXPECT_EQ(stats.total.pairs_closed, kPairs);
  EXPECT_EQ(stats.total.bytes_a_to_b, total_up);
  EXPECT_EQ(stats.total.bytes_b_to_a, total_down);
  EXPECT_EQ(stats.total.pipes_in_use, 0u);
  EXPECT_EQ(stats.total.buffers_in_use, 0u);
  EXPECT_EQ(stats.total.bytes_spliced + stats.total.bytes_copied, total_up + total_down);
  if (GetParam() == RelayMode::kCopy) {
    EXPECT_EQ(stats.total.bytes_spliced, 0u);
  }
  if (GetParam() == RelayMode::kSplice) {
    EXPECT_GT(stats.total.bytes_spliced, 0u);
  }
  std::printf(
      "[ %s ] %zu pairs: setup %.2f s, transfer %.2f s, %.1f MiB up + %.1f MiB down; "
      "spliced %.1f MiB, copied %.1f MiB, pipe pool exhausted %llu, splice switches %llu\n",
      RelayModeName(GetParam()), kPairs, std::chrono::duration<double>(setup).count(),
      std::chrono::duration<double>(transfer).count(), total_up / 1048576.0, total_down / 1048576.0,
      stats.total.bytes_spliced / 1048576.0, stats.total.bytes_copied / 1048576.0,
      static_cast<unsigned long long>(stats.total.pipe_pool_exhausted),
      static_cast<unsigned long long>(stats.total.splice_switches));
}

// ---- Slow reader ----------------------------------------------------------------

// 1 GiB in every build: the reader is paced (below), so the run takes about
// the same time with and without AddressSanitizer (measured: 1 GiB per mode
// in 5-8 s normally, 7-12 s under ASan on this 2-core machine), and no
// smaller size is needed for the ASan build.
constexpr uint64_t kSlowTotal = 1ull << 30;
// The reader's pace. Far below what the relay moves on loopback (GB/s), so
// the destination stays full and the relay must hold the stream back.
constexpr double kReaderBytesPerSecond = 160.0 * (1 << 20);

TEST_P(RelayScaleTest, SlowReaderOfOneGibHoldsOneVehiclePerDirection) {
  EngineOptions options;
  options.workers = 1;
  options.mode = GetParam();
  auto started = testing::StartEngine(options);
  ASSERT_TRUE(started.ok()) << started.error().message();
  std::unique_ptr<Engine> engine = std::move(started.value());
  testing::CloseRecorder closes;

  auto a = testing::MakeLegPair(AF_INET);
  auto b = testing::MakeLegPair(AF_INET);
  ASSERT_TRUE(a.ok() && b.ok());
  UniqueFd client = std::move(a->app);
  UniqueFd backend = std::move(b->app);
  engine->Pipe(Leg{std::move(a->leg)}, Leg{std::move(b->leg)}, closes.Callback());

  // Baseline after the engine, its worker thread and the sockets exist: what
  // grows from here is what the transfer costs in user space. Socket buffers
  // and pipe pages are kernel memory and do not count in VmRSS; the relay's
  // own user-space memory is at most one 64 KiB ring per direction. 64 MiB is
  // far above that and the noise (thread stacks, malloc arenas, ASan's shadow
  // and quarantine), and far below what any per-byte retention of a 1 GiB
  // (or 256 MiB) stream would show.
  const size_t rss_start = testing::RssKiB();
  const TimePoint start = Clock::now();

  std::atomic<bool> reader_done{false};
  std::thread sender([&] { testing::SendPattern(client.get(), 42, kSlowTotal, 64 << 10); });
  testing::Received got;
  int reads = 0;
  std::thread reader([&] {
    // Slow: reads of up to 128 KiB, each followed by a sleep that keeps the
    // reader on a fixed byte rate (a fixed sleep per read would make the
    // pace depend on how the relay happens to chunk its writes).
    std::vector<char> data(128 << 10), want(128 << 10);
    const TimePoint paced_from = Clock::now();
    for (; reads < 1 << 24; ++reads) {
      ssize_t n = ::recv(backend.get(), data.data(), data.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (n < 0) got.error = errno;
        break;
      }
      FillPattern(42, got.bytes, want.data(), static_cast<size_t>(n));
      if (got.first_mismatch < 0 &&
          std::memcmp(data.data(), want.data(), static_cast<size_t>(n)) != 0) {
        got.first_mismatch = static_cast<int64_t>(got.bytes);
      }
      got.bytes += static_cast<uint64_t>(n);
      std::this_thread::sleep_until(
          paced_from + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(
                           static_cast<double>(got.bytes) / kReaderBytesPerSecond)));
    }
    reader_done = true;
  });

  // Sample the relay's gauges and this process's RSS while the reader runs.
  uint64_t max_vehicles = 0, max_pipes = 0, max_buffers = 0;
  int max_client_unsent = 0;  // bytes the client could not hand to the relay
  size_t rss_max = rss_start;
  int samples = 0;
  const TimePoint deadline = start + seconds(kAsan ? 120 : 60);
  while (!reader_done && Clock::now() < deadline) {
    EngineStats s = engine->Stats();
    if (reader_done) break;  // the backend's EOF may have borrowed for B->A
    max_vehicles = std::max(max_vehicles, s.total.pipes_in_use + s.total.buffers_in_use);
    max_pipes = std::max(max_pipes, s.total.pipes_in_use);
    max_buffers = std::max(max_buffers, s.total.buffers_in_use);
    rss_max = std::max(rss_max, testing::RssKiB());
    int unsent = 0;
    if (::ioctl(client.get(), SIOCOUTQ, &unsent) == 0) {
      max_client_unsent = std::max(max_client_unsent, unsent);
    }
    ++samples;
    std::this_thread::sleep_for(milliseconds(20));
  }
  if (!reader_done) ::shutdown(backend.get(), SHUT_RDWR);  // unblock a stuck run
  reader.join();
  ::shutdown(client.get(), SHUT_RDWR);
  sender.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();

  EXPECT_EQ(got.bytes, kSlowTotal);
  EXPECT_EQ(got.first_mismatch, -1);
  EXPECT_EQ(got.error, 0);
  EXPECT_GE(samples, 20);
  // Backpressure reached the sender: the relay stopped reading while the
  // destination was full, so unsent bytes piled up in the client's socket
  // (a relay that buffered the stream would keep that queue near empty).
  EXPECT_GT(max_client_unsent, 256 << 10);
  // Only A->B carries data while the reader runs (B->A has nothing to read),
  // so the relay holds one pipe or ring, never more. When the reader sets
  // the pace, its full socket keeps that one busy, and some sample catches
  // it. A relay slower than the reader (a TSan build: every counter is an
  // instrumented atomic) never fills its destination, so a ring goes back to
  // the pool after every turn and the samples may all miss it. A run that
  // kept the reader's pace ends within a few percent of it; one at 86 % of
  // it (a TSan copy run) already saw no ring in 309 samples.
  const double rate = static_cast<double>(got.bytes) / secs;
  EXPECT_LE(max_vehicles, 1u) << "pipes " << max_pipes << ", buffers " << max_buffers;
  if (rate >= 0.95 * kReaderBytesPerSecond) {
    EXPECT_EQ(max_vehicles, 1u) << "pipes " << max_pipes << ", buffers " << max_buffers;
  }
  if (GetParam() == RelayMode::kCopy) {
    EXPECT_EQ(max_pipes, 0u);
  }
  if (GetParam() == RelayMode::kSplice) {
    EXPECT_EQ(max_buffers, 0u);
  }
  const double growth_mib = (static_cast<double>(rss_max) - static_cast<double>(rss_start)) / 1024;
  EXPECT_LT(growth_mib, 64.0);

  backend.Reset();
  client.Reset();
  auto closed = closes.WaitFor(1, seconds(10));
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
  EXPECT_EQ(closed[0].a_to_b, kSlowTotal);
  EXPECT_EQ(closed[0].b_to_a, 0u);
  EngineStats s = engine->Stats();
  EXPECT_EQ(s.total.pipes_in_use + s.total.buffers_in_use, 0u);
  if (GetParam() == RelayMode::kSplice) {
    EXPECT_EQ(s.total.bytes_spliced, kSlowTotal);
  }
  if (GetParam() == RelayMode::kCopy) {
    EXPECT_EQ(s.total.bytes_copied, kSlowTotal);
  }
  if (GetParam() == RelayMode::kAuto) {
    EXPECT_GT(s.total.splice_switches, 0u);
  }
  std::printf(
      "[ %s ] slow reader: %.0f MiB in %.2f s (%.0f MiB/s), %d reads (avg %.0f KiB), "
      "%d samples, client unsent max %d KiB, max pipes %llu, "
      "max buffers %llu, RSS %zu KiB -> max %zu KiB (+%.1f MiB)\n",
      RelayModeName(GetParam()), kSlowTotal / 1048576.0, secs, kSlowTotal / 1048576.0 / secs, reads,
      got.bytes / 1024.0 / std::max(reads, 1), samples, max_client_unsent / 1024,
      static_cast<unsigned long long>(max_pipes), static_cast<unsigned long long>(max_buffers),
      rss_start, rss_max, growth_mib);
}

// ---- More pairs than ring buffers ------------------------------------------------

// Regression (fixed in e54414d): a pair whose pump returned kNoBuffer is
// parked by Worker::WaitForBuffer(), and Worker::WakeBufferWaiters() used to
// be called only from Pair::Close(). A ring that came back because a
// direction drained (ReturnIdle in relay/pump.cc) woke nobody, so the parked
// pair waited until some unrelated pair closed -- forever if the other pairs
// were long-lived. Here: buffers_cap = 1, pair 1 holds the only ring while
// its backend is full, pair 2's 100 bytes find the pool dry; then pair 1
// drains (its ring goes back) and stays open. Pair 2's bytes must arrive
// while pair 1 is still open.
class BufferPressureTest : public ::testing::TestWithParam<RelayMode> {};

TEST_P(BufferPressureTest, PairWaitingForARingRunsWhenAnotherPairReturnsOne) {
  EngineOptions options;
  options.workers = 1;
  options.mode = GetParam();
  options.buffers_cap = 1;
  options.pipe_pool_cap = 0;  // splice mode falls back to copy: rings only
  auto started = testing::StartEngine(options);
  ASSERT_TRUE(started.ok()) << started.error().message();
  std::unique_ptr<Engine> engine = std::move(started.value());
  testing::CloseRecorder closes;

  auto a1 = testing::MakeLegPair(AF_INET), b1 = testing::MakeLegPair(AF_INET);
  auto a2 = testing::MakeLegPair(AF_INET), b2 = testing::MakeLegPair(AF_INET);
  ASSERT_TRUE(a1.ok() && b1.ok() && a2.ok() && b2.ok());
  engine->Pipe(Leg{std::move(a1->leg)}, Leg{std::move(b1->leg)}, closes.Callback());
  engine->Pipe(Leg{std::move(a2->leg)}, Leg{std::move(b2->leg)}, closes.Callback());

  // Pair 1 pushes until the relay holds its ring full (backend 1 not read).
  std::atomic<bool> stop_pushing{false};
  std::atomic<uint64_t> pushed{0};
  std::thread pusher([&] {
    std::vector<char> buf(64 << 10);
    SetNonBlocking(a1->app.get());
    for (int i = 0; i < 1'000'000 && !stop_pushing; ++i) {
      FillPattern(1, pushed, buf.data(), buf.size());
      ssize_t n = ::send(a1->app.get(), buf.data(), buf.size(), MSG_NOSIGNAL);
      if (n > 0) {
        pushed += static_cast<uint64_t>(n);
      } else {
        std::this_thread::sleep_for(milliseconds(1));
      }
    }
  });
  ASSERT_TRUE(
      testing::WaitFor([&] { return engine->Stats().total.buffers_in_use == 1; }, seconds(10)));
  std::this_thread::sleep_for(milliseconds(200));  // backpressure all the way back
  stop_pushing = true;
  pusher.join();
  ASSERT_EQ(engine->Stats().total.buffers_in_use, 1u) << "pair 1 should still hold the ring";

  // Pair 2 sends 100 bytes (no FIN): the pool is dry, so they wait (by design).
  ASSERT_EQ(testing::SendPattern(a2->app.get(), 2, 100, 100, false), 100u);
  std::this_thread::sleep_for(milliseconds(100));

  // Backend 1 reads everything pair 1 pushed; its ring drains and goes back.
  // Pair 1 stays open.
  {
    std::vector<char> buf(256 << 10), want(256 << 10);
    uint64_t got = 0;
    struct timeval tv {
      10, 0
    };
    ::setsockopt(b1->app.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (int i = 0; i < 1'000'000 && got < pushed; ++i) {
      ssize_t n = ::recv(b1->app.get(), buf.data(), buf.size(), 0);
      ASSERT_GT(n, 0) << "backend 1 got " << got << " of " << pushed.load();
      FillPattern(1, got, want.data(), static_cast<size_t>(n));
      ASSERT_EQ(std::memcmp(buf.data(), want.data(), static_cast<size_t>(n)), 0);
      got += static_cast<uint64_t>(n);
    }
    ASSERT_EQ(got, pushed.load());
  }
  ASSERT_TRUE(
      testing::WaitFor([&] { return engine->Stats().total.buffers_in_use == 0; }, seconds(5)))
      << "pair 1's ring should be back in the pool";
  EXPECT_EQ(closes.count(), 0u);

  // Pair 2's 100 bytes must now arrive, with pair 1 still open.
  struct timeval three_s {
    3, 0
  };
  ::setsockopt(b2->app.get(), SOL_SOCKET, SO_RCVTIMEO, &three_s, sizeof(three_s));
  char buf[100];
  ssize_t n = ::recv(b2->app.get(), buf, sizeof(buf), MSG_WAITALL);
  EXPECT_EQ(n, 100) << "pair 2 is still parked on the buffer pool although a ring is free "
                       "(waiters are only woken when a pair closes)";

  // Clean up: closing pair 1 wakes pair 2 either way.
  ::shutdown(a1->app.get(), SHUT_WR);
  ::shutdown(b1->app.get(), SHUT_WR);
  ::shutdown(a2->app.get(), SHUT_WR);
  ::shutdown(b2->app.get(), SHUT_WR);
  auto closed = closes.WaitFor(2, seconds(10));
  EXPECT_EQ(closed.size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Modes, BufferPressureTest,
                         ::testing::Values(RelayMode::kSplice, RelayMode::kCopy, RelayMode::kAuto),
                         [](const ::testing::TestParamInfo<RelayMode>& info) {
                           return std::string(RelayModeName(info.param));
                         });

INSTANTIATE_TEST_SUITE_P(Modes, RelayScaleTest,
                         ::testing::Values(RelayMode::kSplice, RelayMode::kCopy, RelayMode::kAuto),
                         [](const ::testing::TestParamInfo<RelayMode>& info) {
                           return std::string(RelayModeName(info.param));
                         });

}  // namespace
}  // namespace zrelay
