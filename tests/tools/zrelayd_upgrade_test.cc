// zrelayd --upgrade on real processes: under a steady load of short
// connections and a few long streams, A hands its listening sockets to B,
// then B to C. No connection attempt is refused or reset, every echo is
// byte-exact, and each old process drains and exits 0.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/clock.h"
#include "engine/socket.h"
#include "tests/relay/relay_test_util.h"
#include "tests/relay/udp_test_util.h"
#include "tests/support/loop_test_util.h"
#include "tests/tools/notify_socket.h"
#include "tests/tools/zrelayd_process_util.h"

namespace zrelay {
namespace {

using testing::Process;
using testing::ReadUntil;
using testing::WaitExit;

// Every blocking read or write of the test's peers ends within this.
void BoundBlockingCalls(int fd) {
  timeval tv{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// A backend on 127.0.0.1 that echoes every connection, each on a thread of
// its own, until the client's EOF.
class EchoBackend {
 public:
  EchoBackend() {
    auto fd = ListenOn(testing::Loopback(AF_INET));
    if (!fd.ok()) return;
    address_ = LocalAddress(fd->get())->ToString();
    fd_ = std::move(fd.value());
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~EchoBackend() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    for (std::thread& t : echoes_) t.join();
  }
  const std::string& address() const { return address_; }

 private:
  void Accept() {
    const TimePoint deadline = Clock::now() + seconds(60);
    while (!stop_ && Clock::now() < deadline) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) continue;
      testing::SetBlocking(c.get(), true);
      BoundBlockingCalls(c.get());
      echoes_.emplace_back([c = std::move(c)] {
        char buf[64 << 10];
        for (;;) {
          ssize_t n = ::recv(c.get(), buf, sizeof(buf), 0);
          if (n <= 0) break;
          if (!testing::WriteAll(c.get(), std::string(buf, static_cast<size_t>(n)))) break;
        }
        ::shutdown(c.get(), SHUT_WR);
      });
    }
  }

  UniqueFd fd_;
  std::string address_;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> echoes_;  // touched by the acceptor only, joined after it
};

Result<UniqueFd> Connect(const Address& address) {
  auto fd = testing::BlockingConnect(address);
  if (fd.ok()) BoundBlockingCalls(fd->get());
  return fd;
}

// One short connection: `size` pattern bytes out, the same back, byte-exact.
// Empty when all went well, else what went wrong.
std::string EchoOnce(const Address& address, uint64_t seed, uint64_t size) {
  auto fd = Connect(address);
  if (!fd.ok()) return "connect: " + fd.error().message();
  if (testing::SendPattern(fd->get(), seed, size) != size) return "send cut short";
  testing::Received back = testing::ReceivePattern(fd->get(), seed);
  if (back.error != 0) return "receive: " + std::string(std::strerror(back.error));
  if (back.bytes != size) return "echoed " + std::to_string(back.bytes) + " bytes";
  if (back.first_mismatch != -1) return "mismatch at " + std::to_string(back.first_mismatch);
  return "";
}

// Short connections one after the other, a few ms apart, alternating
// between the listener's addresses, until Stop() (and at most 2000).
class ConnectionLoad {
 public:
  explicit ConnectionLoad(std::vector<Address> addresses)
      : addresses_(std::move(addresses)), thread_([this] { Run(); }) {}
  ~ConnectionLoad() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int succeeded() const { return succeeded_; }
  const std::vector<std::string>& failures() const { return failures_; }

 private:
  void Run() {
    for (int i = 0; i < 2000 && !stop_; ++i) {
      std::string failed = EchoOnce(addresses_[i % addresses_.size()], 1000 + i, 4096 + i % 512);
      if (failed.empty()) {
        ++succeeded_;
      } else {
        failures_.push_back("connection " + std::to_string(i) + ": " + failed);
      }
      std::this_thread::sleep_for(milliseconds(3));
    }
  }

  std::vector<Address> addresses_;
  std::atomic<bool> stop_{false};
  int succeeded_ = 0;                  // read after Stop()
  std::vector<std::string> failures_;  // read after Stop()
  std::thread thread_;
};

// A connection that sends 16 KiB every 40 ms for `chunks` chunks while a
// second thread reads and checks the echo: it lives across an upgrade.
class LongStream {
 public:
  LongStream(const Address& address, uint64_t seed, int chunks) : seed_(seed) {
    auto fd = Connect(address);
    if (!fd.ok()) {
      error_ = fd.error().message();
      return;
    }
    fd_ = std::move(fd.value());
    reader_ = std::thread([this] { Read(); });
    writer_ = std::thread([this, chunks] { Write(chunks); });
  }
  ~LongStream() { Join(); }

  // True once the first bytes came back: the relay that carries the stream
  // has accepted it.
  bool WaitEchoing() {
    return testing::WaitFor([this] { return received_.load() > 0; }, seconds(10));
  }
  // Empty when every byte came back, in order.
  std::string Finish() {
    Join();
    if (!error_.empty()) return error_;
    if (read_error_ != 0) return "receive: " + std::string(std::strerror(read_error_));
    if (received_ != sent_ || sent_ == 0) {
      return "sent " + std::to_string(sent_) + ", echoed " + std::to_string(received_.load());
    }
    if (mismatch_ != -1) return "mismatch at " + std::to_string(mismatch_);
    return "";
  }

 private:
  void Write(int chunks) {
    char chunk[16 << 10];
    for (int i = 0; i < chunks; ++i) {
      testing::FillPattern(seed_, sent_, chunk, sizeof(chunk));
      if (!testing::WriteAll(fd_.get(), std::string(chunk, sizeof(chunk)))) break;
      sent_ += sizeof(chunk);
      std::this_thread::sleep_for(milliseconds(40));
    }
    ::shutdown(fd_.get(), SHUT_WR);
  }
  void Read() {
    char buf[16 << 10];
    for (;;) {
      ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
      if (n <= 0) {
        if (n < 0) read_error_ = errno;
        return;
      }
      const uint64_t at = received_.load();
      for (ssize_t i = 0; i < n && mismatch_ == -1; ++i) {
        if (static_cast<uint8_t>(buf[i]) != testing::PatternByte(seed_, at + i)) {
          mismatch_ = static_cast<int64_t>(at + i);
        }
      }
      received_ += static_cast<uint64_t>(n);
    }
  }
  void Join() {
    if (writer_.joinable()) writer_.join();
    if (reader_.joinable()) reader_.join();
  }

  uint64_t seed_;
  UniqueFd fd_;
  std::string error_;
  uint64_t sent_ = 0;  // by the writer, read after Join()
  std::atomic<uint64_t> received_{0};
  int read_error_ = 0;     // by the reader, read after Join()
  int64_t mismatch_ = -1;  // by the reader, read after Join()
  std::thread reader_, writer_;
};

// The kernel's listening sockets on `port` (IPv4 and IPv6), by inode: TCP
// ones listening, or UDP ones unconnected. The same set before and after an
// upgrade means the new process serves the very sockets the old one had,
// not new ones bound beside them.
std::set<std::string> ListeningSocketInodes(int port, const std::string& protocol = "tcp") {
  std::set<std::string> inodes;
  char hex_port[8];
  std::snprintf(hex_port, sizeof(hex_port), ":%04X", port);
  // 0A: LISTEN; 07: CLOSE, what /proc says of a UDP socket with no peer.
  const std::string wanted_state = protocol == "udp" ? "07" : "0A";
  for (const std::string& table : {"/proc/net/" + protocol, "/proc/net/" + protocol + "6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      const bool on_port = local.size() > 5 && local.compare(local.size() - 5, 5, hex_port) == 0;
      if (on_port && state == wanted_state) inodes.insert(inode);
    }
  }
  return inodes;
}

class ZrelaydUpgrade : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/zrelay-upgrade-XXXXXX";  // short: sun_path is 108 bytes
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_path_ = dir_ + "/upgrade.sock";
    port4_ = testing::FreePort(AF_INET);
    port6_ = testing::FreePort(AF_INET6);
    addresses_ = {testing::Loopback(AF_INET, port4_), testing::Loopback(AF_INET6, port6_)};
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A file with one listener on both loopback addresses, relaying to the
  // echo backend; `extra` is appended (more listeners).
  std::string WriteConfig(const std::string& name, const std::string& extra = "") {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << "workers = 2\n"
                           "drain_grace = \"10s\"\n"
                           "upgrade_socket = \""
                        << socket_path_ << "\"\n"
                        << "[[listener]]\n"
                           "name = \"echo\"\n"
                           "listen = [\"127.0.0.1:"
                        << port4_ << "\", \"[::1]:" << port6_ << "\"]\n"
                        << "[[listener.backend]]\n"
                           "address = \""
                        << echo_.address() << "\"\n"
                        << extra;
    return path;
  }

  // A zrelayd started from `config` that serves its upgrade socket; its
  // start-up lines in `log`.
  Process Start(const std::vector<std::string>& args, std::string* log) {
    Process p = testing::SpawnZrelayd(args);
    *log = ReadUntil(p.err_fd, "for the next upgrade\n");
    return p;
  }

  // Waits for `p` to exit 0 after it logged that `successor` took over.
  void ExpectHandedOverAndExits(Process& p, pid_t successor) {
    std::string log = ReadUntil(p.err_fd, "auto splice switches");
    EXPECT_NE(log.find("upgrade: process " + std::to_string(successor) + " took over; draining"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("SIGTERM: draining"), std::string::npos) << log;
    EXPECT_EQ(WaitExit(p.pid), 0) << testing::ReadAvailable(p.err_fd);
    ::close(p.err_fd);
  }

  void StopAndExpectExit0(Process& p) {
    ::kill(p.pid, SIGTERM);
    EXPECT_EQ(WaitExit(p.pid), 0) << testing::ReadAvailable(p.err_fd);
    ::close(p.err_fd);
  }

  EchoBackend echo_;
  std::string dir_, socket_path_;
  int port4_ = 0, port6_ = 0;
  std::vector<Address> addresses_;
};

TEST_F(ZrelaydUpgrade, HandsOverTwiceUnderLoadWithoutLosingAConnection) {
  const std::string config = WriteConfig("zrelayd.toml");
  std::string log;
  Process a = Start({"--config", config}, &log);
  ASSERT_NE(log.find("upgrade: serving " + socket_path_), std::string::npos) << log;
  std::set<std::string> sockets = ListeningSocketInodes(port4_);
  sockets.merge(ListeningSocketInodes(port6_));
  ASSERT_EQ(sockets.size(), 4u) << "2 workers, 2 addresses";
  auto same_sockets = [&] {
    std::set<std::string> now = ListeningSocketInodes(port4_);
    now.merge(ListeningSocketInodes(port6_));
    return now == sockets;
  };

  ConnectionLoad load(addresses_);
  // Two streams on A that are still sending when B takes over.
  LongStream a4(addresses_[0], 1, 60), a6(addresses_[1], 2, 60);
  ASSERT_TRUE(a4.WaitEchoing() && a6.WaitEchoing());

  Process b = Start({"--config", config, "--upgrade"}, &log);
  EXPECT_NE(log.find("from process " + std::to_string(a.pid)), std::string::npos) << log;
  EXPECT_NE(log.find("upgrade: serving; process " + std::to_string(a.pid) + " drains"),
            std::string::npos)
      << log;
  ExpectHandedOverAndExits(a, b.pid);  // once a4 and a6 are done
  EXPECT_TRUE(same_sockets());
  EXPECT_EQ(a4.Finish(), "");
  EXPECT_EQ(a6.Finish(), "");

  // Two streams on B across the next upgrade, to C.
  LongStream b4(addresses_[0], 3, 30), b6(addresses_[1], 4, 30);
  ASSERT_TRUE(b4.WaitEchoing() && b6.WaitEchoing());
  Process c = Start({"--config", config, "--upgrade"}, &log);
  EXPECT_NE(log.find("from process " + std::to_string(b.pid)), std::string::npos) << log;
  ExpectHandedOverAndExits(b, c.pid);
  EXPECT_TRUE(same_sockets());
  EXPECT_EQ(b4.Finish(), "");
  EXPECT_EQ(b6.Finish(), "");

  std::this_thread::sleep_for(milliseconds(200));  // a few connections to C alone
  load.Stop();
  EXPECT_GT(load.succeeded(), 0);
  EXPECT_TRUE(load.failures().empty())
      << load.failures().size() << " failed, the first: " << load.failures().front();
  for (const Address& address : addresses_) EXPECT_EQ(EchoOnce(address, 7, 100000), "");
  StopAndExpectExit0(c);
}

// A new process that fails after taking the sockets (here a second listener
// whose port is taken) exits 1 before saying ready: the old one never drains
// and serves on, and a later upgrade still works.
TEST_F(ZrelaydUpgrade, FailedUpgradeLeavesTheOldOneServing) {
  const std::string config = WriteConfig("zrelayd.toml");
  std::string log;
  Process a = Start({"--config", config}, &log);

  auto taken =
      ListenOn(testing::Loopback(AF_INET), ListenSocketOptions{.backlog = 1, .reuse_port = false});
  ASSERT_TRUE(taken.ok());
  const std::string blocked = LocalAddress(taken->get())->ToString();
  const std::string bad = WriteConfig(
      "bad.toml", "[[listener]]\nname = \"blocked\"\nlisten = \"" + blocked +
                      "\"\n[[listener.backend]]\naddress = \"" + echo_.address() + "\"\n");
  testing::Finished failed = testing::RunZrelayd({"--config", bad, "--upgrade"});
  EXPECT_EQ(failed.exit, 1) << failed.err;
  EXPECT_NE(failed.err.find("took 4 listening sockets from process " + std::to_string(a.pid)),
            std::string::npos)
      << failed.err;
  EXPECT_NE(failed.err.find("listener blocked: "), std::string::npos) << failed.err;
  log = ReadUntil(a.err_fd, "still serving\n");
  EXPECT_NE(log.find("went away before it was ready"), std::string::npos) << log;

  for (const Address& address : addresses_) EXPECT_EQ(EchoOnce(address, 8, 10000), "");
  Process b = Start({"--config", config, "--upgrade"}, &log);
  ExpectHandedOverAndExits(a, b.pid);
  for (const Address& address : addresses_) EXPECT_EQ(EchoOnce(address, 9, 10000), "");
  StopAndExpectExit0(b);
}

// --upgrade with nobody to take over from exits 1 and says so; a plain start
// beside a live zrelayd on the same upgrade_socket exits 1 before binding.
TEST_F(ZrelaydUpgrade, UpgradeNeedsALiveProcessAndAPlainStartNeedsNone) {
  const std::string config = WriteConfig("zrelayd.toml");
  testing::Finished alone = testing::RunZrelayd({"--config", config, "--upgrade"});
  EXPECT_EQ(alone.exit, 1) << alone.err;
  EXPECT_NE(alone.err.find("no zrelayd is serving upgrade_socket " + socket_path_),
            std::string::npos)
      << alone.err;
  EXPECT_EQ(alone.err.find("listening on"), std::string::npos) << alone.err;

  std::string log;
  Process a = Start({"--config", config}, &log);
  testing::Finished second = testing::RunZrelayd({"--config", config});
  EXPECT_EQ(second.exit, 1) << second.err;
  EXPECT_NE(second.err.find("upgrade socket '" + socket_path_ + "': a running process serves it"),
            std::string::npos)
      << second.err;
  EXPECT_EQ(second.err.find("listening on"), std::string::npos) << second.err;
  for (const Address& address : addresses_) EXPECT_EQ(EchoOnce(address, 10, 10000), "");
  StopAndExpectExit0(a);
  EXPECT_FALSE(std::filesystem::exists(socket_path_)) << "removed at exit";
}

// True once `pid` is gone or a zombie (not our child: its new parent reaps it).
bool Exited(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  size_t paren = line.rfind(')');
  return paren == std::string::npos || line.substr(paren + 2, 1) == "Z";
}

// SIGUSR2: the running zrelayd starts its own binary with --upgrade (under
// systemd, inside the service), which takes the sockets over; the old one
// drains and exits 0 with no connection lost. The successor is nobody's
// child here: the test learns its pid from the log and stops it by pid.
TEST_F(ZrelaydUpgrade, Sigusr2StartsItsSuccessorWhichTakesOver) {
  const std::string config = WriteConfig("zrelayd.toml");
  std::string log;
  testing::NotifySocket systemd;  // the successor inherits NOTIFY_SOCKET
  ::setenv("NOTIFY_SOCKET", systemd.name().c_str(), 1);
  Process a = Start({"--config", config}, &log);
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_EQ(systemd.Next(), "READY=1\nSTATUS=1 listener, mode splice, 2 workers");
  ConnectionLoad load(addresses_);
  LongStream stream(addresses_[0], 11, 30);
  ASSERT_TRUE(stream.WaitEchoing());

  ::kill(a.pid, SIGUSR2);
  log = ReadUntil(a.err_fd, " took over; draining\n");
  const size_t started = log.find("SIGUSR2: started ");
  ASSERT_NE(started, std::string::npos) << log;
  const size_t at = log.find("(process ", started);
  ASSERT_NE(at, std::string::npos) << log;
  const pid_t successor = static_cast<pid_t>(std::stoi(log.substr(at + 9)));
  EXPECT_NE(log.find("--config " + config + " --upgrade"), std::string::npos) << log;
  EXPECT_NE(log.find("upgrade: process " + std::to_string(successor) + " took over; draining"),
            std::string::npos)
      << log;
  EXPECT_EQ(WaitExit(a.pid), 0) << testing::ReadAvailable(a.err_fd);
  EXPECT_EQ(stream.Finish(), "");
  // The old process names its successor the service's main process, and
  // its own drain is not the service stopping: no STOPPING=1.
  std::vector<std::string> states{systemd.Next(), systemd.Next()};
  std::sort(states.begin(), states.end());
  EXPECT_EQ(states[0], "MAINPID=" + std::to_string(successor));
  EXPECT_EQ(states[1], "READY=1\nSTATUS=1 listener, mode splice, 2 workers");
  EXPECT_EQ(systemd.Next(milliseconds(300)), "") << "nothing more, STOPPING=1 least of all";

  load.Stop();
  EXPECT_GT(load.succeeded(), 0);
  EXPECT_TRUE(load.failures().empty())
      << load.failures().size() << " failed, the first: " << load.failures().front();
  for (const Address& address : addresses_) EXPECT_EQ(EchoOnce(address, 12, 10000), "");
  ::kill(successor, SIGTERM);
  EXPECT_TRUE(testing::WaitFor([&] { return Exited(successor); }, seconds(10)));
  ::close(a.err_fd);
}

// Clients that keep asking a UDP echo through `to`, one datagram in flight
// each, every answer checked, until Stop().
class DatagramLoad {
 public:
  DatagramLoad(const Address& to, int clients) {
    for (int c = 0; c < clients; ++c) {
      threads_.emplace_back([this, to, c] {
        UniqueFd fd = testing::UdpClient(to);
        for (uint32_t i = 0; !stop_ && i < 100000; ++i) {
          const std::string payload = testing::Pattern(200, c * 100000 + i);
          std::optional<std::string> answer;
          if (::send(fd.get(), payload.data(), payload.size(), 0) == 200) {
            answer = testing::ReceiveDatagram(fd.get(), 2000);
          }
          std::lock_guard<std::mutex> lock(mu_);
          if (answer == payload) {
            ++answered_;
          } else {
            failures_.push_back("client " + std::to_string(c) + ", request " + std::to_string(i) +
                                (answer ? ": a wrong answer" : ": no answer"));
          }
        }
      });
    }
  }
  ~DatagramLoad() { Stop(); }
  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  int answered() const { return answered_; }
  const std::vector<std::string>& failures() const { return failures_; }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  int answered_ = 0;
  std::vector<std::string> failures_;
  std::vector<std::thread> threads_;
};

// A UDP listener beside the TCP one: the new process reads the very UDP
// sockets the old one had, and clients that keep asking across the upgrade
// get every answer (the old process stops reading at once, its flows answer
// what they already relayed, then it exits).
TEST_F(ZrelaydUpgrade, AUdpListenerHandsOverWithoutLosingADatagram) {
  testing::UdpEchoBackend backend(AF_INET, "");
  const int udp_port = testing::DeadUdpPort(AF_INET).port();
  const Address udp = testing::Loopback(AF_INET, udp_port);
  const std::string config =
      WriteConfig("zrelayd.toml", "[[listener]]\nname = \"dns\"\nprotocol = \"udp\"\nlisten = \"" +
                                      udp.ToString() + "\"\n[[listener.backend]]\naddress = \"" +
                                      backend.address().ToString() + "\"\n");
  std::string log;
  Process a = Start({"--config", config}, &log);
  const std::set<std::string> sockets = ListeningSocketInodes(udp_port, "udp");
  ASSERT_EQ(sockets.size(), 2u) << "one per worker";

  DatagramLoad load(udp, 4);
  std::this_thread::sleep_for(milliseconds(300));
  Process b = Start({"--config", config, "--upgrade"}, &log);
  EXPECT_NE(log.find("from process " + std::to_string(a.pid)), std::string::npos) << log;
  ExpectHandedOverAndExits(a, b.pid);
  EXPECT_EQ(ListeningSocketInodes(udp_port, "udp"), sockets);
  std::this_thread::sleep_for(milliseconds(300));  // asking B alone
  load.Stop();
  EXPECT_GT(load.answered(), 0);
  EXPECT_TRUE(load.failures().empty())
      << load.failures().size() << " failed, the first: " << load.failures().front();
  StopAndExpectExit0(b);
}

}  // namespace
}  // namespace zrelay
