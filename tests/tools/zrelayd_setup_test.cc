// zrelayd's process setup: the fd limit raised at start, --max-connections,
// and --user (privileges dropped once the listener is bound; needs root,
// skipped otherwise), with the relay still working.
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"
#include "tests/tools/zrelayd_process_util.h"

namespace zrelay {
namespace {

using testing::Process;
using testing::ReadUntil;
using testing::WaitExit;

// The "Uid:" or "Gid:" line of /proc/PID/status: real, effective, saved, fs.
std::string StatusLine(pid_t pid, const std::string& key) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key + ":", 0) == 0) return line;
  }
  return "";
}

// The child inherits a soft limit of 256; zrelayd raises it to the hard
// limit and says so.
TEST(ZrelaydSetup, RaisesTheSoftFdLimitToTheHardLimit) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_max <= 256) GTEST_SKIP() << "hard fd limit " << saved.rlim_max << " is too low";
  rlimit low = saved;
  low.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  Process p = testing::SpawnZrelayd({"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1"});
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  std::string banner = ReadUntil(p.err_fd, "workers\n");
  std::string hard = std::to_string(saved.rlim_max);
  EXPECT_NE(banner.find("fd limit raised from 256 to " + hard), std::string::npos) << banner;
  std::ifstream limits("/proc/" + std::to_string(p.pid) + "/limits");
  std::string line;
  while (std::getline(limits, line) && line.rfind("Max open files", 0) != 0) {
  }
  std::istringstream fields(line.substr(std::string("Max open files").size()));
  std::string soft_now, hard_now;
  fields >> soft_now >> hard_now;
  EXPECT_EQ(soft_now, hard) << line;
  EXPECT_EQ(hard_now, hard) << line;
  ::kill(p.pid, SIGTERM);
  EXPECT_EQ(WaitExit(p.pid), 0);
  ::close(p.err_fd);
}

// Whether a connection waits on `listen_fd` within `timeout_ms`.
bool Pending(int listen_fd, int timeout_ms) {
  pollfd p{listen_fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// The one byte a client of the test below sends first: which client it is.
int ReadClientId(int fd) {
  char id = 0;
  return ::recv(fd, &id, 1, MSG_WAITALL) == 1 ? id - '0' : -1;
}

// Past --max-connections zrelayd stops accepting: the third client waits in
// the backlog (connected by the kernel, no backend yet) until a pair closes,
// then it is relayed byte-exact. The banner and the totals say so.
// Each worker has its own SO_REUSEPORT socket, so the waiting client is not
// necessarily the last one to connect: each client sends its number first,
// and the backend learns from it which two are served. Regression: the test
// took the third client for the waiting one and, when the kernel had put it
// in the first two, closed its backend under it (about one run in ten).
TEST(ZrelaydSetup, MaxConnectionsMakesTheNextClientWaitForAFreeSlot) {
  auto backend = ListenOn(testing::Loopback(AF_INET));
  ASSERT_TRUE(backend.ok());
  testing::SetBlocking(backend->get(), true);
  Process p = testing::SpawnZrelayd({"--listen", "127.0.0.1:0", "--backend",
                                     LocalAddress(backend->get())->ToString(), "--workers", "2",
                                     "--max-connections", "2", "--drain-grace", "1s"});
  std::string banner = ReadUntil(p.err_fd, "workers\n");
  EXPECT_NE(banner.find("at most 2 connections"), std::string::npos) << banner;
  auto front = testing::ListeningAddress(banner);
  ASSERT_TRUE(front.ok()) << front.error().message();

  std::vector<UniqueFd> clients, served;
  for (int i = 0; i < 3; ++i) {
    auto c = testing::BlockingConnect(front.value());
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(testing::WriteAll(c->get(), std::string(1, static_cast<char>('0' + i))));
    clients.push_back(std::move(c.value()));
  }
  bool is_served[3] = {false, false, false};
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(Pending(backend->get(), 10000)) << "backend connection " << i << " never came";
    served.emplace_back(::accept(backend->get(), nullptr, nullptr));
    int id = ReadClientId(served.back().get());
    ASSERT_TRUE(id >= 0 && id < 3 && !is_served[id]) << "backend connection " << i << ": " << id;
    is_served[id] = true;
  }
  // Bounded check that nothing more comes while both slots are taken.
  EXPECT_FALSE(Pending(backend->get(), 300)) << "a third backend connection past the limit";

  // Both pairs end cleanly; a slot frees and the waiting client gets its turn.
  int waiting = 0;
  for (int i = 0; i < 3; ++i) {
    if (is_served[i]) {
      clients[i].Reset();
    } else {
      waiting = i;
    }
  }
  for (UniqueFd& fd : served) fd.Reset();
  ASSERT_TRUE(Pending(backend->get(), 10000)) << "the waiting client was never relayed";
  UniqueFd third(::accept(backend->get(), nullptr, nullptr));
  EXPECT_EQ(ReadClientId(third.get()), waiting);
  std::thread echo([&] {
    testing::Received r = testing::ReceivePattern(third.get(), 7);
    EXPECT_EQ(r.first_mismatch, -1);
    testing::SendPattern(third.get(), 8, r.bytes);
    third.Reset();
  });
  std::thread sender([&] { testing::SendPattern(clients[waiting].get(), 7, 256 << 10); });
  testing::Received back = testing::ReceivePattern(clients[waiting].get(), 8);
  sender.join();
  echo.join();
  EXPECT_EQ(back.bytes, 256u << 10);
  EXPECT_EQ(back.first_mismatch, -1);

  ::kill(p.pid, SIGTERM);
  std::string tail = ReadUntil(p.err_fd, "auto splice switches");
  EXPECT_EQ(WaitExit(p.pid), 0);
  EXPECT_NE(tail.find("accepted 3"), std::string::npos) << tail;
  EXPECT_EQ(tail.find("accept paused at max connections 0,"), std::string::npos) << "no pause counted: " << tail;
  ::close(p.err_fd);
}

TEST(ZrelaydSetup, UserDropsToNobodyAndKeepsRelaying) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "not root (euid " << ::geteuid() << "): --user cannot drop privileges";
  }
  const passwd* nobody = ::getpwnam("nobody");
  ASSERT_NE(nobody, nullptr) << "no user 'nobody' on this system";
  const std::string uid = std::to_string(nobody->pw_uid), gid = std::to_string(nobody->pw_gid);

  auto backend = ListenOn(testing::Loopback(AF_INET));
  ASSERT_TRUE(backend.ok());
  testing::SetBlocking(backend->get(), true);
  Process p = testing::SpawnZrelayd({"--listen", "127.0.0.1:0", "--backend",
                                     LocalAddress(backend->get())->ToString(), "--user", "nobody",
                                     "--drain-grace", "1s"});
  std::string banner = ReadUntil(p.err_fd, "workers\n");
  EXPECT_NE(banner.find("running as user 'nobody'"), std::string::npos) << banner;
  auto front = testing::ListeningAddress(banner);
  ASSERT_TRUE(front.ok()) << front.error().message();
  // Every id, real, effective, saved and fs, is nobody's.
  EXPECT_EQ(StatusLine(p.pid, "Uid"), "Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid);
  EXPECT_EQ(StatusLine(p.pid, "Gid"), "Gid:\t" + gid + "\t" + gid + "\t" + gid + "\t" + gid);
  EXPECT_EQ(StatusLine(p.pid, "Groups").find(" 0 "), std::string::npos);

  std::thread server([&] {
    int c = ::accept(backend->get(), nullptr, nullptr);
    testing::Received r = testing::ReceivePattern(c, 3);
    EXPECT_EQ(r.first_mismatch, -1);
    testing::SendPattern(c, 4, r.bytes);
    ::close(c);
  });
  auto client = testing::BlockingConnect(front.value());
  ASSERT_TRUE(client.ok());
  std::thread sender([&] { testing::SendPattern(client->get(), 3, 1 << 20); });
  testing::Received back = testing::ReceivePattern(client->get(), 4);
  sender.join();
  server.join();
  EXPECT_EQ(back.bytes, 1u << 20);
  EXPECT_EQ(back.first_mismatch, -1);

  ::kill(p.pid, SIGTERM);
  EXPECT_EQ(WaitExit(p.pid), 0);
  ::close(p.err_fd);
}

TEST(ZrelaydSetup, UnknownUserExitsOneNamingIt) {
  Process p = testing::SpawnZrelayd(
      {"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--user", "no-such-user-zr"});
  std::string err = ReadUntil(p.err_fd, "no such user");
  EXPECT_EQ(WaitExit(p.pid), 1);
  EXPECT_NE(err.find("--user 'no-such-user-zr': no such user"), std::string::npos) << err;
  ::close(p.err_fd);
}

}  // namespace
}  // namespace zrelay
