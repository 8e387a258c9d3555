// zrelayd's signals, on the real process: SIGHUP is survived, a second
// SIGTERM ends a drain at once.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "engine/socket.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"
#include "tests/tools/zrelayd_process_util.h"

namespace zrelay {
namespace {

using testing::Process;
using testing::ReadUntil;
using testing::WaitExit;

// Regression: SIGHUP (a closed terminal, a log rotation) killed zrelayd with
// exit 129 and cut every pair. A transfer in flight across the SIGHUP stays
// byte-exact, and a client that comes after it is relayed too.
TEST(ZrelaydSignals, SighupIsLoggedAndServingGoesOn) {
  auto backend = ListenOn(testing::Loopback(AF_INET));
  ASSERT_TRUE(backend.ok());
  testing::SetBlocking(backend->get(), true);
  Process p = testing::SpawnZrelayd({"--listen", "127.0.0.1:0", "--backend",
                                     LocalAddress(backend->get())->ToString(), "--workers", "2",
                                     "--drain-grace", "1s"});
  auto front = testing::ListeningAddress(ReadUntil(p.err_fd, "workers\n"));
  ASSERT_TRUE(front.ok()) << front.error().message();

  constexpr uint64_t kBytes = 8 << 20;
  // The backend reads nothing until the SIGHUP has been handled, so the
  // transfer is still in flight when the signal lands.
  std::atomic<bool> hup_seen{false};
  std::atomic<int> accepted{0};
  std::thread server([&] {
    for (int i = 0; i < 2; ++i) {
      int c = ::accept(backend->get(), nullptr, nullptr);
      if (c < 0) return;
      ++accepted;
      EXPECT_TRUE(testing::WaitFor([&] { return hup_seen.load(); }, seconds(10)));
      testing::Received r = testing::ReceivePattern(c, 10 + i);
      EXPECT_EQ(r.first_mismatch, -1);
      testing::SendPattern(c, 20 + i, r.bytes);
      ::close(c);
    }
  });
  auto first = testing::BlockingConnect(front.value());
  ASSERT_TRUE(first.ok());
  std::thread sender([&] { testing::SendPattern(first->get(), 10, kBytes); });
  // The pair is up (zrelayd connected the backend) before the signal.
  EXPECT_TRUE(testing::WaitFor([&] { return accepted.load() == 1; }, seconds(10)));
  ::kill(p.pid, SIGHUP);
  std::string log = ReadUntil(p.err_fd, "ignored\n");
  EXPECT_NE(log.find("SIGHUP: no configuration file to reload; ignored"), std::string::npos) << log;
  hup_seen = true;
  testing::Received back = testing::ReceivePattern(first->get(), 20);
  sender.join();
  EXPECT_EQ(back.bytes, kBytes);
  EXPECT_EQ(back.first_mismatch, -1);

  // Still accepting after the SIGHUP.
  auto second = testing::BlockingConnect(front.value());
  ASSERT_TRUE(second.ok());
  std::thread sender2([&] { testing::SendPattern(second->get(), 11, 1 << 20); });
  testing::Received back2 = testing::ReceivePattern(second->get(), 21);
  sender2.join();
  server.join();
  EXPECT_EQ(back2.bytes, 1u << 20);
  EXPECT_EQ(back2.first_mismatch, -1);

  ::kill(p.pid, SIGTERM);
  std::string tail = ReadUntil(p.err_fd, "auto splice switches");
  EXPECT_EQ(WaitExit(p.pid), 0);
  EXPECT_NE(tail.find("accepted 2"), std::string::npos) << tail;
  ::close(p.err_fd);
}

// Regression: a second SIGTERM during a drain was ignored; only SIGKILL ended
// a long --drain-grace. With a pair held open and a 60 s grace, the second
// SIGTERM closes the pair (cause drained), prints the totals and exits 0
// (WaitExit gives up after 10 s).
TEST(ZrelaydSignals, SecondSigtermEndsTheDrainAtOnce) {
  auto backend = ListenOn(testing::Loopback(AF_INET));
  ASSERT_TRUE(backend.ok());
  testing::SetBlocking(backend->get(), true);
  Process p = testing::SpawnZrelayd({"--listen", "127.0.0.1:0", "--backend",
                                     LocalAddress(backend->get())->ToString(), "--drain-grace",
                                     "60s", "--log-closes"});
  auto front = testing::ListeningAddress(ReadUntil(p.err_fd, "workers\n"));
  ASSERT_TRUE(front.ok()) << front.error().message();
  auto client = testing::BlockingConnect(front.value());
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(testing::WriteAll(client->get(), "held"));
  // The pair is up once the backend has the bytes; it then holds it open.
  int held = ::accept(backend->get(), nullptr, nullptr);
  ASSERT_GE(held, 0);
  char buf[4];
  ASSERT_EQ(::recv(held, buf, sizeof(buf), MSG_WAITALL), 4);
  EXPECT_EQ(std::string(buf, 4), "held");

  ::kill(p.pid, SIGTERM);
  std::string log = ReadUntil(p.err_fd, "draining");
  EXPECT_NE(log.find("SIGTERM: draining (grace 60000 ms"), std::string::npos) << log;
  ::kill(p.pid, SIGTERM);
  log = ReadUntil(p.err_fd, "auto splice switches");
  EXPECT_EQ(WaitExit(p.pid), 0);
  EXPECT_NE(log.find("second SIGTERM: closing the remaining pairs now"), std::string::npos) << log;
  EXPECT_NE(log.find(" bytes_up=4 bytes_down=0 duration_ms="), std::string::npos) << log;
  EXPECT_NE(log.find(" cause=drained"), std::string::npos) << log;
  EXPECT_NE(log.find("pairs closed 1"), std::string::npos) << log;
  // Both legs were closed: the client and the backend see EOF.
  EXPECT_LE(::recv(client->get(), buf, sizeof(buf), 0), 0);
  EXPECT_LE(::recv(held, buf, sizeof(buf), 0), 0);
  ::close(held);
  ::close(p.err_fd);
}

}  // namespace
}  // namespace zrelay
