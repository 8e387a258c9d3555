// The upgrade protocol without zrelayd: listening sockets handed over a real
// unix socket, in batches, past garbage, stalls and a path already taken.
#include <dirent.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "tests/support/loop_test_util.h"
#include "tools/upgrade/protocol.h"
#include "tools/upgrade/upgrade_client.h"
#include "tools/upgrade/upgrade_path.h"
#include "tools/upgrade/upgrade_server.h"
#include "tools/upgrade/wire.h"

namespace zrelay::upgrade {
namespace {

using zrelay::testing::BlockingConnect;
using zrelay::testing::Loopback;
using zrelay::testing::WaitFor;
using zrelay::testing::WriteAll;

// A directory for socket paths. Not under $TEST_TMPDIR: Bazel's paths are
// longer than sun_path allows.
class TempDir {
 public:
  TempDir() {
    char dir[] = "/tmp/zrelay-upgrade-XXXXXX";
    EXPECT_NE(::mkdtemp(dir), nullptr);
    path_ = dir;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

size_t OpenFds() {
  size_t count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  while (dirent* entry = ::readdir(dir)) count += entry->d_name[0] != '.';
  ::closedir(dir);
  return count;
}

// A listening socket on `address`, and what the kernel bound.
struct Listening {
  UniqueFd fd;
  Address address;
};
Listening ListenAt(const Address& address) {
  auto fd = ListenOn(address, ListenSocketOptions{.backlog = 16, .reuse_port = false});
  EXPECT_TRUE(fd.ok()) << fd.error().message();
  Address bound = LocalAddress(fd->get()).value();
  return {std::move(fd.value()), bound};
}

std::vector<HandedSocket> DupsOf(const std::vector<Listening>& listening, size_t copies) {
  std::vector<HandedSocket> sockets;
  for (size_t c = 0; c < copies; ++c) {
    for (size_t i = 0; i < listening.size(); ++i) {
      sockets.push_back({"listener-" + std::to_string(i), listening[i].address.ToString(),
                         UniqueFd(::dup(listening[i].fd.get()))});
    }
  }
  return sockets;
}

// Accepts one connection on a non-blocking listening socket, within 5 s.
UniqueFd AcceptOne(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return UniqueFd();
  return UniqueFd(::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC));
}

// Sends `text` on `from` and checks that `to` reads exactly it.
void ExpectCarries(int from, int to, const std::string& text) {
  ASSERT_TRUE(WriteAll(from, text));
  std::string got(text.size(), '\0');
  ASSERT_EQ(::recv(to, got.data(), got.size(), MSG_WAITALL), static_cast<ssize_t>(got.size()));
  EXPECT_EQ(got, text);
}

UpgradeServerOptions ServeSockets(const std::string& path,
                                  const std::vector<Listening>& listening,
                                  std::atomic<pid_t>* ready_pid) {
  UpgradeServerOptions options;
  options.path = path;
  options.sockets = [&listening]() -> Result<std::vector<HandedSocket>> {
    return DupsOf(listening, 1);
  };
  options.on_ready = [ready_pid](pid_t pid) { ready_pid->store(pid); };
  return options;
}

// The whole exchange over a real path: IPv4, IPv6 and unix listening sockets
// arrive with their names and addresses, each accepts what is connected to
// the original's address, and after Ready the server has stopped and the path
// can be bound again (by the new process) as stale.
TEST(UpgradeProtocol, HandsOverListeningSocketsThatAcceptOnTheOriginalAddress) {
  TempDir dir;
  std::vector<Listening> listening;
  listening.push_back(ListenAt(Loopback(AF_INET)));
  listening.push_back(ListenAt(Loopback(AF_INET6)));
  listening.push_back(ListenAt(Address::Parse("unix:" + dir.File("app.sock")).value()));
  std::atomic<pid_t> ready_pid{0};
  const std::string path = dir.File("upgrade.sock");
  auto server = UpgradeServer::Start(ServeSockets(path, listening, &ready_pid));
  ASSERT_TRUE(server.ok()) << server.error().message();
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto client = UpgradeClient::Connect(path);
  ASSERT_TRUE(client.ok()) << client.error().message();
  auto handover = client->TakeSockets();
  ASSERT_TRUE(handover.ok()) << handover.error().message();
  EXPECT_EQ(handover->from, ::getpid());
  ASSERT_EQ(handover->sockets.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const HandedSocket& got = handover->sockets[i];
    EXPECT_EQ(got.listener, "listener-" + std::to_string(i));
    EXPECT_EQ(got.address, listening[i].address.ToString());
    EXPECT_EQ(LocalAddress(got.fd.get())->ToString(), got.address);
    // A descriptor of the same socket, not a copy of its number.
    EXPECT_NE(got.fd.get(), listening[i].fd.get());
    auto out = BlockingConnect(listening[i].address);
    ASSERT_TRUE(out.ok()) << out.error().message();
    UniqueFd in = AcceptOne(got.fd.get());
    ASSERT_TRUE(in.valid()) << got.address;
    ExpectCarries(out->get(), in.get(), "through socket " + std::to_string(i));
  }

  ASSERT_TRUE(client->Ready(4242).ok());
  EXPECT_EQ(ready_pid.load(), 4242);
  // The old server no longer listens: the path counts as stale, and the new
  // process (here the test) binds it.
  EXPECT_EQ(ConnectToPath(path).error().code().value(), ECONNREFUSED);
  auto next = ListenOnPath(path);
  ASSERT_TRUE(next.ok()) << next.error().message();
  server->reset();  // handed over: it leaves the new process's file alone
  EXPECT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, next->inode);
}

// 600 sockets go in three messages (250, 250, 100): every one arrives, in
// order, with its own address.
TEST(UpgradeProtocol, BatchesMoreSocketsThanOneMessageCarries) {
  TempDir dir;
  std::vector<Listening> listening;
  listening.push_back(ListenAt(Loopback(AF_INET)));
  listening.push_back(ListenAt(Loopback(AF_INET6)));
  listening.push_back(ListenAt(Address::Parse("unix:" + dir.File("app.sock")).value()));
  std::vector<HandedSocket> sent = DupsOf(listening, 200);
  auto pair = zrelay::testing::UnixPair();
  ASSERT_TRUE(pair.ok());
  std::thread sender([&] {
    EXPECT_TRUE(SendSockets(pair->client.get(), sent, Clock::now() + seconds(10)).ok());
  });
  auto handover = ReceiveSockets(pair->server.get(), Clock::now() + seconds(10));
  sender.join();
  ASSERT_TRUE(handover.ok()) << handover.error().message();
  ASSERT_EQ(handover->sockets.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(handover->sockets[i].listener, sent[i].listener);
    EXPECT_EQ(LocalAddress(handover->sockets[i].fd.get())->ToString(), sent[i].address) << i;
  }
}

// More descriptors than a message may carry: the sender refuses; a peer that
// sends them anyway (253, the kernel's limit) is caught by MSG_CTRUNC, and
// nothing it sent stays open.
TEST(UpgradeProtocol, TooManyDescriptorsInOneMessageAreRefused) {
  auto pair = zrelay::testing::UnixPair();
  ASSERT_TRUE(pair.ok());
  std::vector<int> fds(kMaxFdsPerMessage + 1, pair->client.get());
  Status refused = SendMessage(pair->client.get(), kSockets, "", fds, Clock::now() + seconds(5));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("at most 250 per message"), std::string::npos)
      << refused.error().message();

  const size_t before = OpenFds();
  std::vector<int> many(253, pair->client.get());
  char header[kHeaderSize] = {'Z', 'R', 'U', 'P', 1, kSockets, 0, 0, 0, 0, 0, 0};
  iovec iov{header, sizeof(header)};
  alignas(cmsghdr) char control[CMSG_SPACE(253 * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(many.size() * sizeof(int));
  std::memcpy(CMSG_DATA(c), many.data(), many.size() * sizeof(int));
  ASSERT_EQ(::sendmsg(pair->client.get(), &msg, 0), static_cast<ssize_t>(sizeof(header)));
  auto received = ReceiveMessage(pair->server.get(), Clock::now() + seconds(5));
  ASSERT_FALSE(received.ok());
  EXPECT_NE(received.error().message().find("cut short"), std::string::npos)
      << received.error().message();
  EXPECT_EQ(OpenFds(), before);
}

// What a confused or hostile peer may send: each is an error that says what
// is wrong, never a read past the payload or a huge allocation.
TEST(UpgradeProtocol, MalformedMessagesAreErrors) {
  struct Case {
    std::string bytes;
    std::string error;
  };
  auto header = [](char version, char type, uint32_t size) {
    std::string h = {'Z', 'R', 'U', 'P', version, type, 0, 0};
    for (int i = 3; i >= 0; --i) h.push_back(static_cast<char>(size >> (8 * i)));
    return h;
  };
  const std::vector<Case> cases = {
      {"GET / HTTP/1.1\r\n\r\n", "bad magic"},
      {header(2, kRequest, 0), "protocol version 2, expected 1"},
      {header(1, kRequest, 1 << 30), "payload of 1073741824 bytes announced"},
      {header(1, kSockets, 10) + "abc", "peer closed in the middle of a message"},
      {"ZRU", "peer closed in the middle of a message"},
      {"", "peer closed before a message"},
      // Sockets that announce two entries but bring no descriptors.
      {header(1, kSockets, 2) + std::string("\0\2", 2), "2 entries but 0 descriptors"},
      {header(1, kSocketsEnd, 8) + std::string("\0\0\0\3\0\0\0\1", 8),
       "3 sockets announced, 0 received"},
      {header(1, kReadyAck, 0), "expected a sockets message, got type 5 (ready-ack)"},
      {header(1, 77, 0), "got type 77 (unknown)"},
  };
  for (const Case& c : cases) {
    auto pair = zrelay::testing::UnixPair();
    ASSERT_TRUE(pair.ok());
    ASSERT_TRUE(WriteAll(pair->client.get(), c.bytes));
    ::shutdown(pair->client.get(), SHUT_WR);
    auto handover = ReceiveSockets(pair->server.get(), Clock::now() + seconds(5));
    ASSERT_FALSE(handover.ok()) << c.error;
    EXPECT_NE(handover.error().message().find(c.error), std::string::npos)
        << "expected '" << c.error << "' in: " << handover.error().message();
  }
}

// A server that got garbage drops that client and serves the next one.
TEST(UpgradeProtocol, ServerDropsGarbageAndServesTheNextClient) {
  TempDir dir;
  std::vector<Listening> listening;
  listening.push_back(ListenAt(Loopback(AF_INET)));
  std::atomic<pid_t> ready_pid{0};
  const std::string path = dir.File("upgrade.sock");
  auto server = UpgradeServer::Start(ServeSockets(path, listening, &ready_pid));
  ASSERT_TRUE(server.ok()) << server.error().message();

  auto garbage = ConnectToPath(path);
  ASSERT_TRUE(garbage.ok());
  ASSERT_TRUE(WriteAll(garbage->get(), std::string(64, 'x')));
  // Dropped: the server closes it without an answer (a reset, as it leaves
  // the rest of the garbage unread).
  pollfd p{garbage->get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  char byte;
  EXPECT_LE(::read(garbage->get(), &byte, 1), 0);

  auto client = UpgradeClient::Connect(path);
  ASSERT_TRUE(client.ok());
  auto handover = client->TakeSockets();
  ASSERT_TRUE(handover.ok()) << handover.error().message();
  EXPECT_EQ(handover->sockets.size(), 1u);
  EXPECT_EQ(ready_pid.load(), 0);
}

// A client that stalls mid-message, or takes the sockets and never says
// ready, is dropped after its timeout; while one holds the server, other
// clients are refused (one upgrade at a time); afterwards they are served.
TEST(UpgradeProtocol, StalledClientsAreDroppedAfterTheirTimeout) {
  TempDir dir;
  std::vector<Listening> listening;
  listening.push_back(ListenAt(Loopback(AF_INET)));
  std::atomic<pid_t> ready_pid{0};
  const std::string path = dir.File("upgrade.sock");
  UpgradeServerOptions options = ServeSockets(path, listening, &ready_pid);
  options.message_timeout = milliseconds(300);
  options.ready_timeout = milliseconds(300);
  auto server = UpgradeServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.error().message();

  auto stalled = ConnectToPath(path);
  ASSERT_TRUE(stalled.ok());
  ASSERT_TRUE(WriteAll(stalled->get(), "ZRUP"));  // a third of a header, then nothing
  pollfd p{stalled->get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  char byte;
  EXPECT_EQ(::read(stalled->get(), &byte, 1), 0) << "closed by the server";

  // Takes the sockets, never says ready: meanwhile others are refused.
  auto slow = UpgradeClient::Connect(path);
  ASSERT_TRUE(slow.ok());
  ASSERT_TRUE(slow->TakeSockets().ok());
  auto second = UpgradeClient::Connect(path);
  ASSERT_TRUE(second.ok());
  auto refused = second->TakeSockets();
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("refused: another upgrade is in progress"),
            std::string::npos)
      << refused.error().message();
  // Dropped after the ready timeout; then the next client is served.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto next = UpgradeClient::Connect(path);
        return next.ok() && next->TakeSockets().ok();
      },
      seconds(5), milliseconds(50)));
  EXPECT_EQ(ready_pid.load(), 0);
}

// A new process that goes away after taking the sockets (a bad configuration,
// a bind that failed) leaves the server serving: the next one takes over.
TEST(UpgradeProtocol, ClientGoneBeforeReadyLeavesTheServerServing) {
  TempDir dir;
  std::vector<Listening> listening;
  listening.push_back(ListenAt(Loopback(AF_INET)));
  std::atomic<pid_t> ready_pid{0};
  const std::string path = dir.File("upgrade.sock");
  auto server = UpgradeServer::Start(ServeSockets(path, listening, &ready_pid));
  ASSERT_TRUE(server.ok()) << server.error().message();
  {
    auto failing = UpgradeClient::Connect(path);
    ASSERT_TRUE(failing.ok());
    ASSERT_TRUE(failing->TakeSockets().ok());
  }
  auto next = UpgradeClient::Connect(path);
  ASSERT_TRUE(next.ok());
  // The first client's close may still be on its way to the server: until
  // then, this one is refused. Try again within a bound.
  Result<Handover> handover = next->TakeSockets();
  for (int i = 0; i < 100 && !handover.ok(); ++i) {
    std::this_thread::sleep_for(milliseconds(20));
    next = UpgradeClient::Connect(path);
    ASSERT_TRUE(next.ok());
    handover = next->TakeSockets();
  }
  ASSERT_TRUE(handover.ok()) << handover.error().message();
  EXPECT_EQ(ready_pid.load(), 0);
  ASSERT_TRUE(next->Ready(::getpid()).ok());
  EXPECT_EQ(ready_pid.load(), ::getpid());
}

// The sockets cannot be had (the process is draining, say): the client is
// told why.
TEST(UpgradeProtocol, ServerThatCannotHandOverSaysWhy) {
  TempDir dir;
  const std::string path = dir.File("upgrade.sock");
  UpgradeServerOptions options;
  options.path = path;
  options.sockets = []() -> Result<std::vector<HandedSocket>> {
    return Error::Invalid("no listener is open");
  };
  options.on_ready = [](pid_t) { ADD_FAILURE() << "not ready without sockets"; };
  auto server = UpgradeServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.error().message();
  auto client = UpgradeClient::Connect(path);
  ASSERT_TRUE(client.ok());
  auto handover = client->TakeSockets();
  ASSERT_FALSE(handover.ok());
  EXPECT_EQ(handover.error().message(),
            "upgrade through " + path + ": refused: no listener is open");
}

TEST(UpgradeProtocol, NobodyServingThePathIsAClearError) {
  TempDir dir;
  const std::string path = dir.File("upgrade.sock");
  auto client = UpgradeClient::Connect(path);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().message().find("no zrelayd is serving upgrade_socket " + path), 0u)
      << client.error().message();
}

// A path a live process serves is never taken from it; it goes on serving.
TEST(UpgradeProtocol, LivePathIsNotStolen) {
  TempDir dir;
  std::vector<Listening> listening;
  listening.push_back(ListenAt(Loopback(AF_INET)));
  std::atomic<pid_t> ready_pid{0};
  const std::string path = dir.File("upgrade.sock");
  auto first = UpgradeServer::Start(ServeSockets(path, listening, &ready_pid));
  ASSERT_TRUE(first.ok()) << first.error().message();
  auto second = UpgradeServer::Start(ServeSockets(path, listening, &ready_pid));
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find("a running process serves it"), std::string::npos)
      << second.error().message();

  // The first one's probe connection is dropped; then it serves as before.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto client = UpgradeClient::Connect(path);
        return client.ok() && client->TakeSockets().ok();
      },
      seconds(5), milliseconds(20)));
}

// A socket file left by a crashed process is replaced (mode 0600); a path
// that is not a socket is left alone; a server that stops without handing
// over removes its own file.
TEST(UpgradeProtocol, StalePathIsReplacedOtherFilesAreNot) {
  TempDir dir;
  const std::string path = dir.File("upgrade.sock");
  {
    // A crash: bound, never unlinked.
    auto crashed = ListenOn(Address::Parse("unix:" + path).value());
    ASSERT_TRUE(crashed.ok());
  }
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  std::vector<Listening> listening;
  listening.push_back(ListenAt(Loopback(AF_INET)));
  std::atomic<pid_t> ready_pid{0};
  {
    auto server = UpgradeServer::Start(ServeSockets(path, listening, &ready_pid));
    ASSERT_TRUE(server.ok()) << server.error().message();
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto client = UpgradeClient::Connect(path);
    ASSERT_TRUE(client.ok());
    EXPECT_TRUE(client->TakeSockets().ok());
  }
  EXPECT_NE(::lstat(path.c_str(), &st), 0) << "the server's own file is removed";

  std::ofstream(path) << "not a socket";
  auto server = UpgradeServer::Start(ServeSockets(path, listening, &ready_pid));
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().message(),
            "upgrade socket '" + path + "': exists and is not a socket");
  std::ifstream in(path);
  std::string kept;
  std::getline(in, kept);
  EXPECT_EQ(kept, "not a socket");
}

}  // namespace
}  // namespace zrelay::upgrade
