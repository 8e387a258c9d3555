// zrelayd --config reloading its file on SIGHUP, on the real process: under
// a stream of clients it moves to a new backend with every stream intact, a
// broken file changes nothing, removed listeners stop accepting while their
// open pairs finish, added and renamed ones accept (a renamed one on the
// same socket, so nothing is refused).
#include <gtest/gtest.h>
#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "tests/relay/reload_test_util.h"
#include "tests/support/loop_test_util.h"
#include "tests/tools/zrelayd_process_util.h"

namespace zrelay {
namespace {

using testing::ClientStream;
using testing::HeldClient;
using testing::kNewSeed;
using testing::kOldSeed;
using testing::ListenerAddress;
using testing::Process;
using testing::ReadUntil;
using testing::RunClient;
using testing::SeededBackend;
using testing::WaitFor;

constexpr int kClientsPerPhase = 40;
const Duration kPhaseDeadline = seconds(20);

// A [[listener]] with one backend; `keys` go in the listener's own table.
std::string Listener(const std::string& name, const std::string& listen,
                     const SeededBackend& backend, const std::string& keys = "") {
  return "[[listener]]\nname = \"" + name + "\"\nlisten = \"" + listen + "\"\n" + keys +
         "[[listener.backend]]\naddress = \"" + backend.address().ToString() + "\"\n\n";
}

class ZrelaydReload : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    path_ = std::string(tmp != nullptr ? tmp : "/tmp") + "/reload.toml";
  }
  void TearDown() override {
    if (process_.pid > 0) {
      ::kill(process_.pid, SIGTERM);
      EXPECT_EQ(testing::WaitExit(process_.pid), 0);
    }
  }

  void Write(const std::string& listeners, const std::string& globals = "workers = 2\n") {
    std::ofstream(path_) << globals << "drain_grace = \"200ms\"\n\n" << listeners;
  }
  // Starts zrelayd on the file; its start-up lines.
  std::string Start() {
    process_ = testing::SpawnZrelayd({"--config", path_});
    return ReadUntil(process_.err_fd, "workers\n");
  }
  // SIGHUP, then zrelayd's lines up to `last`.
  std::string Reload(const std::string& last = "reload done\n") {
    ::kill(process_.pid, SIGHUP);
    return ReadUntil(process_.err_fd, last);
  }

  std::string path_;
  Process process_;
};

TEST_F(ZrelaydReload, NewBackendUnderLoadWithEveryStreamIntact) {
  SeededBackend old_backend(kOldSeed), new_backend(kNewSeed);
  Write(Listener("web", "127.0.0.1:0", old_backend));
  auto front = ListenerAddress(Start(), "web");
  ASSERT_TRUE(front.ok()) << front.error().message();

  HeldClient held(*front, old_backend);
  ASSERT_TRUE(held.connected());
  ClientStream stream(*front, 3);
  ASSERT_TRUE(WaitFor([&] { return stream.done() >= kClientsPerPhase; }, kPhaseDeadline));

  // workers cannot change on a reload: it is kept, and said so.
  Write(Listener("web", "127.0.0.1:0", new_backend), "workers = 3\n");
  std::string log = Reload();
  stream.Changed();
  EXPECT_NE(log.find("reload: workers needs a restart (or an upgrade) to change; keeping the "
                     "running value\n"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("listener web: reconfigured; 1 backend, round-robin\n"), std::string::npos)
      << log;
  ASSERT_TRUE(
      WaitFor([&] { return stream.done_after_change() >= kClientsPerPhase; }, kPhaseDeadline));
  stream.Stop();

  EXPECT_EQ(stream.refused, 0);
  EXPECT_EQ(stream.bad, 0);
  EXPECT_EQ(stream.old_after_change, 0);
  EXPECT_GE(stream.new_seen, kClientsPerPhase);
  EXPECT_EQ(held.Finish(), kOldSeed) << "the pair open across the reload";
  EXPECT_TRUE(old_backend.ok());
  EXPECT_TRUE(new_backend.ok());
}

TEST_F(ZrelaydReload, BrokenFileIsRefusedAndTheRunningOneServesOn) {
  SeededBackend old_backend(kOldSeed), new_backend(kNewSeed);
  Write(Listener("web", "127.0.0.1:0", old_backend));
  auto front = ListenerAddress(Start(), "web");
  ASSERT_TRUE(front.ok()) << front.error().message();

  std::ofstream(path_) << "workers = \n";
  std::string log = Reload("previous configuration\n");
  EXPECT_NE(log.find("reload refused: " + path_ + ":1:"), std::string::npos) << log;
  EXPECT_EQ(RunClient(*front).seed, kOldSeed);

  // A certificate file that is not there: the whole file is refused, the
  // listener that would have been fine included.
  Write(Listener("web", "127.0.0.1:0", new_backend) +
        Listener("tls", "127.0.0.1:0", new_backend,
                 "tls_cert = \"/nonexistent/site.pem\"\ntls_key = \"/nonexistent/site.key\"\n"));
  log = Reload("previous configuration\n");
  EXPECT_NE(log.find("reload refused: "), std::string::npos) << log;
  EXPECT_NE(log.find("'/nonexistent/site.pem'"), std::string::npos) << log;
  EXPECT_EQ(RunClient(*front).seed, kOldSeed);

  // Mended, it applies.
  Write(Listener("web", "127.0.0.1:0", new_backend));
  Reload();
  EXPECT_EQ(RunClient(*front).seed, kNewSeed);
}

TEST_F(ZrelaydReload, RemovedListenerFinishesItsPairsAndAnAddedOneAccepts) {
  SeededBackend backend(kOldSeed);
  Write(Listener("kept", "127.0.0.1:0", backend) + Listener("gone", "127.0.0.1:0", backend));
  const std::string banner = Start();
  auto kept = ListenerAddress(banner, "kept");
  auto gone = ListenerAddress(banner, "gone");
  ASSERT_TRUE(kept.ok() && gone.ok()) << banner;
  HeldClient held(*gone, backend);
  ASSERT_TRUE(held.connected());

  Write(Listener("kept", "127.0.0.1:0", backend) + Listener("added", "127.0.0.1:0", backend));
  std::string log = Reload();
  EXPECT_NE(log.find("listener gone: closed on 127.0.0.1:0 (open connections finish)\n"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("listener kept:"), std::string::npos) << "unchanged: " << log;
  auto added = ListenerAddress(log, "added");
  ASSERT_TRUE(added.ok()) << log;

  EXPECT_EQ(RunClient(*gone).connect_error, ECONNREFUSED);
  EXPECT_EQ(RunClient(*added).seed, kOldSeed);
  EXPECT_EQ(RunClient(*kept).seed, kOldSeed);
  EXPECT_EQ(held.Finish(), kOldSeed);
  EXPECT_TRUE(backend.ok());
}

TEST_F(ZrelaydReload, RenamedListenerTakesOverTheSocketWithoutARefusal) {
  SeededBackend old_backend(kOldSeed), new_backend(kNewSeed);
  const std::string address = "127.0.0.1:" + std::to_string(testing::FreePort());
  Write(Listener("before", address, old_backend));
  auto front = ListenerAddress(Start(), "before");
  ASSERT_TRUE(front.ok()) << front.error().message();
  ClientStream stream(*front, 3);
  ASSERT_TRUE(WaitFor([&] { return stream.done() >= kClientsPerPhase; }, kPhaseDeadline));

  Write(Listener("after", address, new_backend));
  std::string log = Reload();
  stream.Changed();
  EXPECT_NE(log.find("listener before: closed on " + address), std::string::npos) << log;
  EXPECT_NE(log.find("listener after: listening on " + address), std::string::npos) << log;
  ASSERT_TRUE(
      WaitFor([&] { return stream.done_after_change() >= kClientsPerPhase; }, kPhaseDeadline));
  stream.Stop();

  EXPECT_EQ(stream.refused, 0);
  EXPECT_EQ(stream.bad, 0);
  EXPECT_EQ(stream.old_after_change, 0);
  EXPECT_GE(stream.new_seen, kClientsPerPhase);
}

}  // namespace
}  // namespace zrelay
