// HealthChecker on a real loop against real loopback and unix listeners:
// fall and rise counts, refused and timed-out connects, TLS with a good and
// a wrongly named certificate, option errors, and sockets and memory after
// destruction with checks in flight.
#include "relay/health_checker.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "ssl/tls_context.h"
#include "ssl/tls_stream.h"
#include "tests/support/certs_fixture.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::RunUntil;

struct Change {
  size_t target;
  bool healthy;
  std::string reason;
};

// Open descriptors of this process (the directory's own fd included, the
// same in every call).
int OpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int count = 0;
  while (::readdir(dir) != nullptr) ++count;
  ::closedir(dir);
  return count;
}

// Accepts every connection waiting on a non-blocking listener and closes it.
// Returns how many there were.
int AcceptAndClose(int listener) {
  int accepted = 0;
  for (;;) {
    UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.valid()) return accepted;
    ++accepted;
  }
}

// A listener that never accepts, its queue filled: further SYNs are dropped,
// so a connect hangs. Linux queues backlog + 1 connections.
struct FullListener {
  UniqueFd listener;
  Address address;
  std::vector<UniqueFd> fillers;
};

FullListener MakeFullListener() {
  FullListener full;
  auto listener = ListenOn(testing::Loopback(), {.backlog = 0, .reuse_port = false});
  EXPECT_TRUE(listener.ok());
  full.listener = std::move(listener).value();
  full.address = LocalAddress(full.listener.get()).value();
  for (int i = 0; i < 8; ++i) {
    auto fd = StartConnect(full.address);
    EXPECT_TRUE(fd.ok());
    struct pollfd p = {fd->get(), POLLOUT, 0};
    const bool connected = ::poll(&p, 1, 200) == 1 && SocketError(fd->get()) == 0;
    full.fillers.push_back(std::move(fd).value());
    if (!connected) return full;  // this one hangs in SYN_SENT: the queue is full
  }
  ADD_FAILURE() << "could not fill the accept queue";
  return full;
}

// A TLS server on its own thread with blocking sockets: handshakes a
// connection (or closes it at once, per `mode`), then counts the clients
// that end with close_notify.
class TlsServer {
 public:
  enum Mode { kHandshake, kCloseEveryOther, kCloseAll };

  explicit TlsServer(const testing::CertFiles& cert) {
    TlsServerConfig config;
    config.certs = {{cert.cert, cert.key}};
    auto ctx = BuildServerContext(config);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message();
    if (ctx.ok()) ctx_ = std::move(ctx).value();
    auto listener = ListenOn(testing::Loopback(), {.reuse_port = false});
    EXPECT_TRUE(listener.ok());
    if (listener.ok()) listener_ = std::move(listener).value();
    address_ = LocalAddress(listener_.get()).value();
    thread_ = std::thread([this] { Serve(); });
  }
  ~TlsServer() {
    stop_ = true;
    thread_.join();
  }

  const Address& address() const { return address_; }
  std::atomic<Mode> mode{kHandshake};
  std::atomic<int> accepted{0};
  std::atomic<int> handshakes{0};    // completed
  std::atomic<int> clean_closes{0};  // then close_notify from the client
  std::atomic<int> failed{0};        // handshakes that failed

 private:
  void Serve() {
    while (!stop_) {
      struct pollfd p = {listener_.get(), POLLIN, 0};
      if (::poll(&p, 1, 20) != 1) continue;
      UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));  // blocking
      if (!fd.valid()) continue;
      const int index = accepted++;
      if (mode == kCloseAll || (mode == kCloseEveryOther && index % 2 == 1)) continue;
      struct timeval limit = {2, 0};  // a stuck client cannot hang the thread
      ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
      ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
      TlsStream tls(NewServerSsl(ctx_, fd.get()));
      if (!tls.Handshake().ok()) {
        ++failed;
        continue;
      }
      ++handshakes;
      char buf[256];
      if (tls.Read(buf, sizeof(buf)).status == TlsIo::kEof) {
        ++clean_closes;
        (void)tls.Shutdown();
      }
    }
  }

  TlsContext ctx_;
  UniqueFd listener_;
  Address address_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class HealthCheckerTest : public testing::CertsTest {
 protected:
  void SetUp() override {
    // TLS checks write with write(2); zrelay's workers block SIGPIPE, and so
    // does this thread.
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr), 0);
    auto loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = std::move(loop).value();
    loop_->RunOnce(Duration::zero());  // binds the loop to this thread
  }

  // Starts a checker whose changes land in changes_ (after on_change_, when
  // set, has run inside the callback).
  void StartChecker(const HealthCheckOptions& options, std::vector<HealthTarget> targets) {
    auto checker =
        HealthChecker::Start(*loop_, options, std::move(targets),
                             [this](size_t target, bool healthy, const std::string& reason) {
                               changes_.push_back({target, healthy, reason});
                               if (on_change_) on_change_(changes_.back());
                             });
    ASSERT_TRUE(checker.ok()) << checker.error().message();
    checker_ = std::move(checker).value();
  }

  bool WaitForChanges(size_t count, Duration deadline = seconds(10)) {
    return RunUntil(
        *loop_, [&] { return changes_.size() >= count; }, deadline);
  }

  TlsContext ClientContext() {
    TlsClientConfig config;
    config.ca_file = certs_->ca.cert;
    auto ctx = BuildClientContext(config);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message();
    return ctx.ok() ? std::move(ctx).value() : TlsContext();
  }

  static HealthCheckOptions Fast(int fall, int rise) {
    HealthCheckOptions options;
    options.interval = milliseconds(50);
    options.timeout = milliseconds(40);
    options.fall = fall;
    options.rise = rise;
    return options;
  }

  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<HealthChecker> checker_;
  std::vector<Change> changes_;
  std::function<void(const Change&)> on_change_;
};

// Where nobody listens yet, over IPv4, IPv6 and a unix socket.
class RefusedTest : public HealthCheckerTest, public ::testing::WithParamInterface<int> {
 protected:
  void TearDown() override {
    checker_.reset();
    if (!dir_.empty()) {
      ::unlink((dir_ + "/backend.sock").c_str());
      ::rmdir(dir_.c_str());
    }
  }

  // A free address: a TCP port bound and released, or a unix path with no
  // socket file.
  Address FreeAddress() {
    if (GetParam() == AF_UNIX) {
      // Not under $TEST_TMPDIR: Bazel's paths are longer than sun_path allows.
      char dir[] = "/tmp/zrelay-health-XXXXXX";
      EXPECT_NE(::mkdtemp(dir), nullptr);
      dir_ = dir;
      return Address::Parse("unix:" + dir_ + "/backend.sock").value();
    }
    auto listener = ListenOn(testing::Loopback(GetParam()), {.reuse_port = false});
    EXPECT_TRUE(listener.ok());
    return LocalAddress(listener->get()).value();
  }

  std::string dir_;
};

TEST_P(RefusedTest, DownAfterFallFailuresThenUpAfterExactlyRiseChecks) {
  const Address address = FreeAddress();
  // Target 1 is up all along (a listener whose queue has room connects)
  // and must not change.
  auto up = ListenOn(testing::Loopback(), {.reuse_port = false});
  ASSERT_TRUE(up.ok());
  constexpr int kFall = 3;
  constexpr int kRise = 2;
  StartChecker(Fast(kFall, kRise),
               {HealthTarget{address}, HealthTarget{LocalAddress(up->get()).value()}});
  EXPECT_TRUE(checker_->healthy(0));  // before any check

  ASSERT_TRUE(WaitForChanges(1));
  EXPECT_EQ(changes_[0].target, 0u);
  EXPECT_FALSE(changes_[0].healthy);
  // A missing unix socket file is ENOENT; a TCP port nobody listens on, RST.
  EXPECT_EQ(changes_[0].reason, GetParam() == AF_UNIX ? "connect: No such file or directory"
                                                      : "connect: Connection refused");
  EXPECT_FALSE(checker_->healthy(0));

  // A listener appears. Every check from now on connects; the one that
  // brings the target up has its connection queued by then, so counting the
  // queue inside the callback counts the checks that passed.
  auto listener = ListenOn(address, {.reuse_port = false});
  ASSERT_TRUE(listener.ok()) << listener.error().message();
  int passed_checks = -1;
  on_change_ = [&](const Change&) { passed_checks = AcceptAndClose(listener->get()); };
  ASSERT_TRUE(WaitForChanges(2));
  EXPECT_TRUE(changes_[1].healthy);
  EXPECT_EQ(changes_[1].reason, "2 checks passed");
  EXPECT_EQ(passed_checks, kRise);
  EXPECT_TRUE(checker_->healthy(0));
  EXPECT_EQ(changes_[1].target, 0u);
  EXPECT_EQ(changes_.size(), 2u);
  EXPECT_TRUE(checker_->healthy(1));
}

INSTANTIATE_TEST_SUITE_P(Families, RefusedTest, ::testing::Values(AF_INET, AF_INET6, AF_UNIX),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == AF_INET    ? std::string("IPv4")
                                  : info.param == AF_INET6 ? std::string("IPv6")
                                                           : std::string("Unix");
                         });

TEST_F(HealthCheckerTest, DownAfterExactlyFallFailedHandshakes) {
  // Each check's connection is accepted and closed by the test (below, between
  // loop turns), so its handshake fails and the failures can be counted.
  auto listener = ListenOn(testing::Loopback(), {.reuse_port = false});
  ASSERT_TRUE(listener.ok());
  TlsContext client = ClientContext();
  constexpr int kFall = 4;
  HealthCheckOptions options = Fast(kFall, 1);
  options.interval = milliseconds(100);
  options.timeout = milliseconds(90);
  StartChecker(options,
               {HealthTarget{LocalAddress(listener->get()).value(), client.get(), "localhost"}});
  int closed = 0;
  int closed_at_change = -1;
  on_change_ = [&](const Change&) { closed_at_change = closed; };
  ASSERT_TRUE(RunUntil(
      *loop_,
      [&] {
        closed += AcceptAndClose(listener->get());
        return !changes_.empty();
      },
      seconds(10)));
  EXPECT_EQ(closed_at_change, kFall);
  EXPECT_FALSE(changes_[0].healthy);
  EXPECT_EQ(changes_[0].reason.rfind("TLS handshake: ", 0), 0u) << changes_[0].reason;
}

TEST_F(HealthCheckerTest, OnlyConsecutiveResultsCount) {
  // A server that fails every other handshake: with fall = rise = 2 the
  // target neither goes down nor, once down, comes back up.
  TlsServer server(certs_->server);
  server.mode = TlsServer::kCloseEveryOther;
  TlsContext client = ClientContext();
  HealthCheckOptions options = Fast(2, 2);
  options.interval = milliseconds(200);
  options.timeout = milliseconds(190);
  StartChecker(options, {HealthTarget{server.address(), client.get(), "localhost"}});
  ASSERT_TRUE(RunUntil(
      *loop_, [&] { return server.accepted.load() >= 7; }, seconds(20)));
  EXPECT_TRUE(changes_.empty()) << changes_[0].reason;

  server.mode = TlsServer::kCloseAll;
  ASSERT_TRUE(WaitForChanges(1, seconds(20)));
  EXPECT_FALSE(changes_[0].healthy);

  server.mode = TlsServer::kCloseEveryOther;
  const int seen = server.accepted.load();
  ASSERT_TRUE(RunUntil(
      *loop_, [&] { return server.accepted.load() >= seen + 7; }, seconds(20)));
  EXPECT_EQ(changes_.size(), 1u);
  EXPECT_FALSE(checker_->healthy(0));

  server.mode = TlsServer::kHandshake;
  ASSERT_TRUE(WaitForChanges(2, seconds(20)));
  EXPECT_TRUE(changes_[1].healthy);
  EXPECT_EQ(changes_[1].reason, "2 checks passed");
  checker_.reset();
}

TEST_F(HealthCheckerTest, FirstChecksAreSpreadOverTheInterval) {
  // Ten targets on one listener, each first checked in its own tenth of a
  // 2 s interval: the first connection arrives alone, not with the others.
  auto listener = ListenOn(testing::Loopback(), {.reuse_port = false});
  ASSERT_TRUE(listener.ok());
  const Address address = LocalAddress(listener->get()).value();
  constexpr int kTargets = 10;
  HealthCheckOptions options;
  options.interval = seconds(2);
  options.timeout = seconds(1);
  StartChecker(options, std::vector<HealthTarget>(kTargets, HealthTarget{address}));
  int accepted = 0;
  ASSERT_TRUE(RunUntil(*loop_, [&] { return (accepted = AcceptAndClose(listener->get())) > 0; }));
  EXPECT_LT(accepted, kTargets);
  // And every target gets its check.
  ASSERT_TRUE(RunUntil(*loop_, [&] {
    accepted += AcceptAndClose(listener->get());
    return accepted >= kTargets;
  }));
  EXPECT_TRUE(changes_.empty());
}

TEST_F(HealthCheckerTest, ListenerThatNeverAcceptsTimesOut) {
  FullListener full = MakeFullListener();
  HealthCheckOptions options = Fast(1, 1);
  options.interval = milliseconds(200);
  options.timeout = milliseconds(100);
  StartChecker(options, {HealthTarget{full.address}});
  ASSERT_TRUE(WaitForChanges(1));
  EXPECT_FALSE(changes_[0].healthy);
  EXPECT_EQ(changes_[0].reason, "connect: timed out after 100 ms");
}

TEST_F(HealthCheckerTest, TlsWithAValidCertificatePassesAndClosesCleanly) {
  TlsServer server(certs_->server);  // CN=localhost, issued by the test CA
  TlsContext client = ClientContext();
  HealthCheckOptions options = Fast(1, 1);
  options.interval = milliseconds(200);
  options.timeout = milliseconds(150);
  StartChecker(options, {HealthTarget{server.address(), client.get(), "localhost"}});
  // fall = 1: a single failed check would show up as a change.
  ASSERT_TRUE(RunUntil(
      *loop_, [&] { return server.clean_closes.load() >= 3; }, seconds(20)))
      << "handshakes " << server.handshakes.load() << ", failed " << server.failed.load();
  EXPECT_TRUE(changes_.empty()) << changes_[0].reason;
  EXPECT_TRUE(checker_->healthy(0));
  EXPECT_EQ(server.failed.load(), 0);
  checker_.reset();  // before the server and the context it uses
}

TEST_F(HealthCheckerTest, TlsWithACertificateForAnotherNameFailsNamingTheVerification) {
  TlsServer server(certs_->wrong_name);  // CN=wrong.test
  TlsContext client = ClientContext();
  HealthCheckOptions options = Fast(1, 1);
  options.interval = milliseconds(200);
  options.timeout = milliseconds(150);
  StartChecker(options, {HealthTarget{server.address(), client.get(), "localhost"}});
  ASSERT_TRUE(WaitForChanges(1));
  EXPECT_FALSE(changes_[0].healthy);
  EXPECT_EQ(
      changes_[0].reason.rfind("TLS handshake: certificate verify failed: hostname mismatch", 0),
      0u)
      << changes_[0].reason;
  EXPECT_FALSE(checker_->healthy(0));
  checker_.reset();
}

TEST_F(HealthCheckerTest, InvalidOptionsNameTheField) {
  struct Case {
    HealthCheckOptions options;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{milliseconds(0), milliseconds(0), 3, 2},
       "health check interval must be positive, got 0 ms"},
      {{seconds(1), milliseconds(-5), 3, 2}, "health check timeout must be positive, got -5 ms"},
      {{seconds(1), seconds(2), 3, 2},
       "health check timeout (2000 ms) must be shorter than its interval (1000 ms)"},
      {{seconds(1), seconds(1), 3, 2},
       "health check timeout (1000 ms) must be shorter than its interval (1000 ms)"},
      {{seconds(2), seconds(1), 0, 2}, "health check fall must be at least 1, got 0"},
      {{seconds(2), seconds(1), 3, -1}, "health check rise must be at least 1, got -1"},
  };
  const Address address = testing::Loopback(AF_INET, 9);
  for (const Case& c : cases) {
    auto checker = HealthChecker::Start(*loop_, c.options, {HealthTarget{address}}, nullptr);
    ASSERT_FALSE(checker.ok()) << c.message;
    EXPECT_EQ(checker.error().message(), c.message);
  }
  auto no_address = HealthChecker::Start(*loop_, HealthCheckOptions{},
                                         {HealthTarget{address}, HealthTarget{}}, nullptr);
  ASSERT_FALSE(no_address.ok());
  EXPECT_EQ(no_address.error().message(), "health check target #1 has no address");
}

TEST_F(HealthCheckerTest, DestructionWithChecksInFlightClosesEverySocket) {
  // Two targets whose connect hangs, two whose TLS handshake hangs (a
  // listener with room in its queue that never accepts, so nothing answers
  // the ClientHello).
  FullListener full = MakeFullListener();
  auto silent = ListenOn(testing::Loopback(), {.reuse_port = false});
  ASSERT_TRUE(silent.ok());
  const Address silent_address = LocalAddress(silent->get()).value();
  TlsContext client = ClientContext();
  HealthCheckOptions options;
  options.interval = seconds(2);
  options.timeout = milliseconds(1900);  // every check is in flight at once for a while
  const int before = OpenFds();
  StartChecker(options, {HealthTarget{full.address}, HealthTarget{full.address},
                         HealthTarget{silent_address, client.get(), "localhost"},
                         HealthTarget{silent_address, client.get(), "localhost"}});
  ASSERT_TRUE(RunUntil(
      *loop_, [&] { return OpenFds() == before + 4; }, seconds(10)))
      << OpenFds() - before << " sockets open";
  checker_.reset();
  EXPECT_EQ(OpenFds(), before);
  // Nothing left armed or registered fires into freed memory (ASan checks).
  loop_->RunOnce(milliseconds(50));
  loop_->RunOnce(milliseconds(50));
  EXPECT_EQ(OpenFds(), before);
  EXPECT_TRUE(changes_.empty());
}

TEST_F(HealthCheckerTest, DestructionRightAfterACallbackIsSafe) {
  Address refused;
  {
    auto listener = ListenOn(testing::Loopback(), {.reuse_port = false});
    ASSERT_TRUE(listener.ok());
    refused = LocalAddress(listener->get()).value();
  }
  const int before = OpenFds();
  // Back from the turn that ran the callback.
  StartChecker(Fast(1, 1), {HealthTarget{refused}, HealthTarget{refused}});
  ASSERT_TRUE(WaitForChanges(1));
  checker_.reset();
  // From a task posted by the callback: later in that same turn.
  StartChecker(Fast(1, 1), {HealthTarget{refused}, HealthTarget{refused}});
  bool destroyed = false;
  on_change_ = [&](const Change&) {
    loop_->Post([&] {
      checker_.reset();
      destroyed = true;
    });
  };
  ASSERT_TRUE(RunUntil(*loop_, [&] { return destroyed; }));
  const size_t changes = changes_.size();
  for (int i = 0; i < 4; ++i) loop_->RunOnce(milliseconds(30));
  EXPECT_EQ(changes_.size(), changes);  // no callback after destruction
  EXPECT_EQ(OpenFds(), before);
}

}  // namespace
}  // namespace zrelay
