// zrelayd's [log] files and systemd notifications, on the real process:
// its own lines and the access log in files, timestamped; both files
// reopened on SIGUSR1 after a rename (logrotate); a file it cannot open
// stops the start; READY=1 once it listens and STOPPING=1 on SIGTERM.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "engine/unique_fd.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"
#include "tests/tools/log_test_util.h"
#include "tests/tools/notify_socket.h"
#include "tests/tools/zrelayd_process_util.h"

namespace zrelay {
namespace {

using testing::Lines;
using testing::Process;
using testing::ReadFile;
using testing::Unstamped;
using testing::ReadUntil;
using testing::WaitExit;

constexpr uint64_t kBytes = 64 << 10;

// The file's text once `done` holds for it, or as it is after 10 s.
std::string WaitForFile(const std::string& path,
                        const std::function<bool(const std::string&)>& done) {
  std::string text;
  testing::WaitFor(
      [&] {
        text = ReadFile(path);
        return done(text);
      },
      seconds(10), milliseconds(5));
  return text;
}

std::function<bool(const std::string&)> Has(const std::string& needle) {
  return [needle](const std::string& text) { return text.find(needle) != std::string::npos; };
}

std::function<bool(const std::string&)> HasLines(size_t n) {
  return [n](const std::string& text) { return Lines(text).size() >= n; };
}

// An echo backend for `clients` clients, one after the other: each sends
// pattern `seed` and gets pattern seed + 1 back, as many bytes.
class Backend {
 public:
  explicit Backend(int clients) {
    auto listening = ListenOn(testing::Loopback(AF_INET));
    EXPECT_TRUE(listening.ok());
    if (!listening.ok()) return;
    fd_ = std::move(listening.value());
    testing::SetBlocking(fd_.get(), true);
    address_ = LocalAddress(fd_.get())->ToString();
    thread_ = std::thread([this, clients] {
      for (int i = 0; i < clients; ++i) {
        int c = ::accept(fd_.get(), nullptr, nullptr);
        if (c < 0) return;
        uint64_t seed = 0;
        EXPECT_EQ(::recv(c, &seed, sizeof(seed), MSG_WAITALL), static_cast<ssize_t>(sizeof(seed)));
        testing::Received r = testing::ReceivePattern(c, seed);
        EXPECT_EQ(r.first_mismatch, -1);
        testing::SendPattern(c, seed + 1, r.bytes);
        ::close(c);
      }
    });
  }
  ~Backend() {
    if (thread_.joinable()) thread_.join();
  }
  const std::string& address() const { return address_; }

 private:
  UniqueFd fd_;
  std::string address_;
  std::thread thread_;
};

// One client through `front`: the seed first, then kBytes of pattern; the
// answer checked byte for byte.
void Transfer(const Address& front, uint64_t seed) {
  auto client = testing::BlockingConnect(front);
  ASSERT_TRUE(client.ok());
  ASSERT_EQ(::send(client->get(), &seed, sizeof(seed), 0), static_cast<ssize_t>(sizeof(seed)));
  std::thread sender([&] { testing::SendPattern(client->get(), seed, kBytes - sizeof(seed)); });
  testing::Received back = testing::ReceivePattern(client->get(), seed + 1);
  sender.join();
  EXPECT_EQ(back.bytes, kBytes - sizeof(seed));
  EXPECT_EQ(back.first_mismatch, -1);
}

// Every line of an access log file: timestamped, the listener's, through
// `backend`, every byte each way, done.
void ExpectAccessLines(const std::vector<std::string>& lines, const std::string& backend) {
  const std::string relayed = " backend=" + backend + " bytes_up=" + std::to_string(kBytes) +
                              " bytes_down=" + std::to_string(kBytes - sizeof(uint64_t)) +
                              " duration_ms=";
  for (const std::string& line : lines) {
    EXPECT_EQ(Unstamped(line).rfind("listener=web client=127.0.0.1:", 0), 0u) << line;
    EXPECT_NE(line.find(relayed), std::string::npos) << line;
    EXPECT_EQ(line.substr(line.size() - 11), " cause=done") << line;
  }
}

std::string Config(const std::string& dir, const std::string& backend) {
  std::string path = dir + "/zrelayd.toml";
  std::ofstream(path) << "workers = 1\ndrain_grace = \"200ms\"\n\n"
                         "[log]\nfile = \""
                      << dir << "/zrelayd.log\"\naccess_log = \"" << dir
                      << "/access.log\"\n\n"
                         "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n"
                         "[[listener.backend]]\naddress = \""
                      << backend << "\"\n";
  return path;
}

// Both files, then logrotate's rename and SIGUSR1: the lines after it go to
// new files, the old ones keep theirs.
TEST(ZrelaydLog, FilesAreTimestampedAndReopenedOnSigusr1) {
  Backend backend(5);
  const std::string dir = testing::LogTestDir("log");
  const std::string log = dir + "/zrelayd.log", access = dir + "/access.log";
  Process p = testing::SpawnZrelayd({"--config", Config(dir, backend.address())});
  std::string err = ReadUntil(p.err_fd, "logging to " + log + "\n");
  EXPECT_EQ(err, "zrelayd: logging to " + log + "\n");
  std::string own = WaitForFile(log, Has(" workers\n"));
  auto front = testing::ListenerAddress(own, "web");
  ASSERT_TRUE(front.ok()) << front.error().message();
  for (const std::string& line : Lines(own)) {
    EXPECT_TRUE(testing::Stamped(line)) << line;
    EXPECT_EQ(line.find("zrelayd: "), std::string::npos) << line;
  }

  for (uint64_t seed = 0; seed < 3; ++seed) Transfer(front.value(), seed * 10);
  std::vector<std::string> before = Lines(WaitForFile(access, HasLines(3)));
  ASSERT_EQ(before.size(), 3u);
  ExpectAccessLines(before, backend.address());

  ASSERT_EQ(::rename(log.c_str(), (log + ".1").c_str()), 0);
  ASSERT_EQ(::rename(access.c_str(), (access + ".1").c_str()), 0);
  ::kill(p.pid, SIGUSR1);
  own = WaitForFile(log, Has("SIGUSR1: log files reopened\n"));
  EXPECT_NE(own.find("SIGUSR1: log files reopened\n"), std::string::npos) << own;
  for (uint64_t seed = 3; seed < 5; ++seed) Transfer(front.value(), seed * 10);
  std::vector<std::string> after = Lines(WaitForFile(access, HasLines(2)));
  ASSERT_EQ(after.size(), 2u);
  ExpectAccessLines(after, backend.address());

  ::kill(p.pid, SIGTERM);
  own = WaitForFile(log, Has("auto splice switches"));
  EXPECT_EQ(WaitExit(p.pid), 0);
  EXPECT_NE(own.find("SIGTERM: draining"), std::string::npos) << own;
  EXPECT_NE(own.find("accepted 5,"), std::string::npos) << own;
  EXPECT_EQ(Lines(ReadFile(access + ".1")), before);  // nothing more in the old file
  EXPECT_EQ(ReadFile(log + ".1").find("SIGUSR1"), std::string::npos);
  // Nothing else on stderr: every line went to the file.
  err = ReadUntil(p.err_fd, "(EOF)");
  EXPECT_EQ(err, "") << err;
  ::close(p.err_fd);
}

// The log directory is gone at SIGUSR1: zrelayd says so in the file it
// has, and keeps writing there.
TEST(ZrelaydLog, FailedReopenKeepsTheOldFiles) {
  Backend backend(1);
  const std::string dir = testing::LogTestDir("log_gone");
  const std::string logs = dir + "/logs", moved = dir + "/moved";
  ASSERT_EQ(::mkdir(logs.c_str(), 0700), 0);
  Process p = testing::SpawnZrelayd({"--config", Config(logs, backend.address())});
  auto front =
      testing::ListenerAddress(WaitForFile(logs + "/zrelayd.log", Has(" workers\n")), "web");
  ASSERT_TRUE(front.ok()) << front.error().message();
  ASSERT_EQ(::rename(logs.c_str(), moved.c_str()), 0);
  ::kill(p.pid, SIGUSR1);
  std::string own = WaitForFile(moved + "/zrelayd.log", Has("access.log'"));
  EXPECT_NE(own.find("SIGUSR1: reopen log file '" + logs +
                     "/zrelayd.log': No such file or directory; still writing to the file as it "
                     "was\n"),
            std::string::npos)
      << own;
  EXPECT_NE(own.find("SIGUSR1: reopen access log '" + logs + "/access.log': No such file"),
            std::string::npos)
      << own;
  Transfer(front.value(), 7);
  std::vector<std::string> lines = Lines(WaitForFile(moved + "/access.log", HasLines(1)));
  ASSERT_EQ(lines.size(), 1u);
  ExpectAccessLines(lines, backend.address());
  ::kill(p.pid, SIGTERM);
  EXPECT_EQ(WaitExit(p.pid), 0);
  EXPECT_NE(ReadFile(moved + "/zrelayd.log").find("auto splice switches"), std::string::npos);
  ::close(p.err_fd);
}

// A file zrelayd cannot open is a setup error naming it, before any
// listener binds.
TEST(ZrelaydLog, AFileThatCannotBeOpenedStopsTheStart) {
  const std::string dir = testing::LogTestDir("log_missing");
  for (const char* key : {"file", "access_log"}) {
    const std::string path = dir + "/none/" + key + ".log";
    const std::string config = dir + "/" + key + ".toml";
    std::ofstream(config) << "[log]\n"
                          << key << " = \"" << path
                          << "\"\n\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n"
                             "[[listener.backend]]\naddress = \"127.0.0.1:9\"\n";
    testing::Finished run = testing::RunZrelayd({"--config", config});
    EXPECT_EQ(run.exit, 1) << key;
    const std::string what = std::string(key) == "file" ? "log file" : "access log";
    EXPECT_NE(run.err.find("zrelayd: " + what + " '" + path + "': No such file or directory\n"),
              std::string::npos)
        << run.err;
    EXPECT_EQ(run.err.find("listening"), std::string::npos) << run.err;
  }
}

TEST(ZrelaydNotify, ReadyOnceListeningStoppingOnSigterm) {
  auto backend = ListenOn(testing::Loopback(AF_INET));
  ASSERT_TRUE(backend.ok());
  testing::NotifySocket systemd;
  ::setenv("NOTIFY_SOCKET", systemd.name().c_str(), 1);
  Process p = testing::SpawnZrelayd({"--listen", "127.0.0.1:0", "--backend",
                                     LocalAddress(backend->get())->ToString(), "--workers", "2",
                                     "--drain-grace", "100ms"});
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_EQ(systemd.Next(), "READY=1\nSTATUS=1 listener, mode splice, 2 workers");
  // Ready means listening: the banner is out and a client connects.
  auto front = testing::ListeningAddress(ReadUntil(p.err_fd, "workers\n"));
  ASSERT_TRUE(front.ok()) << front.error().message();
  EXPECT_TRUE(testing::BlockingConnect(front.value()).ok());
  ::kill(p.pid, SIGTERM);
  EXPECT_EQ(systemd.Next(), "STOPPING=1");
  EXPECT_EQ(WaitExit(p.pid), 0);
  ::close(p.err_fd);
}

}  // namespace
}  // namespace zrelay
