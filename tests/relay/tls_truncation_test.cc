// How a pair ends when its TLS client closes its socket without
// close_notify, at each moment a real client does it (an IMAP client's
// LOGOUT and close, through a TLS-terminating pair to a plain backend that
// answers and closes). The client's kernel sends FIN when it read all it was
// sent, RST when input was left unread (the relay's close_notify, an
// answer) or more comes after its close (OpenSSL's alert for its EOF);
// which one the relay sees first is timing. The cause must not be
// (relay/relay.h, after CloseCause):
//   - its EOF, or a reset once the backend had finished and every byte of
//     it was written to the client: kTruncated;
//   - a reset while the backend's stream was still open: kReset (what the
//     client was sent is lost).
// Each timing runs kRounds times: one stray cause fails the test.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <string>
#include <thread>

#include "engine/socket.h"
#include "tests/relay/tls_pipe_fixture.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

constexpr int kRounds = 20;
const std::string kRequest = "a1 LOGOUT\r\n";
const std::string kAnswer = "* BYE logging out\r\na1 OK LOGOUT completed\r\n";

// Waits until `fd` reports `events` (bounded); false on timeout.
bool WaitForEvents(int fd, short events) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, 5000) == 1 && (p.revents & events) != 0;
}

// Waits until `fd`'s receive queue holds at least `bytes` (bounded).
bool WaitForQueued(int fd, int bytes) {
  return testing::WaitFor([&] {
    int queued = 0;
    return ::ioctl(fd, FIONREAD, &queued) == 0 && queued >= bytes;
  });
}

// Reads exactly `n` bytes from a blocking plain socket.
std::string ReadPlain(int fd, size_t n) {
  std::string got(n, '\0');
  size_t have = 0;
  while (have < n) {
    ssize_t r = ::recv(fd, got.data() + have, n - have, 0);
    if (r <= 0) break;
    have += static_cast<size_t>(r);
  }
  got.resize(have);
  return got;
}

// ReceivePattern at 16 KiB a millisecond: slow enough that the relay still
// holds bytes for this reader milliseconds after the writer's last one.
testing::Received ReceiveSlowly(int fd, uint64_t seed) {
  testing::Received r;
  char buf[16 << 10], want[16 << 10];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      r.error = n < 0 ? errno : 0;
      return r;
    }
    testing::FillPattern(seed, r.bytes, want, static_cast<size_t>(n));
    if (r.first_mismatch == -1 && std::memcmp(buf, want, static_cast<size_t>(n)) != 0) {
      r.first_mismatch = static_cast<int64_t>(r.bytes);
    }
    r.bytes += static_cast<uint64_t>(n);
    std::this_thread::sleep_for(milliseconds(1));
  }
}

// When the client closes, relative to the backend's end.
enum class ClientClose {
  // The backend answers and closes; the client reads the answer and closes
  // at once (FIN or RST: the relay's close_notify may or may not be in).
  kAfterAnswer,
  // ... the client waits for the relay's close_notify and FIN, unread: RST.
  kWithCloseNotifyUnread,
  // ... the client reads to the close_notify, then closes: FIN.
  kAfterCloseNotify,
  // ... the client reads nothing of the answer, and closes once all of it
  // and the FIN are in its receive queue: RST.
  kWithAnswerUnread,
  // The backend answers and stays open; the client reads the answer and
  // closes (FIN); the backend closes once it sees that end.
  kBeforeBackend,
  // The backend answers, stays open and sends more; the client closes with
  // that unread (RST) while the backend's stream is open.
  kWithStreamOpen,
};

class TlsTruncationTest : public testing::TlsPipeTest {
 protected:
  // One exchange through a TLS-terminating pair; returns how it closed.
  PairStats Exchange(ClientClose when, std::string& at_client) {
    const size_t before = closes_.count();
    auto a = testing::MakeLegPair(AF_INET);
    auto b = testing::MakeLegPair(AF_INET);
    EXPECT_TRUE(a.ok() && b.ok());
    if (!a.ok() || !b.ok()) return {};
    Leg client_leg{std::move(a->leg)};
    client_leg.ssl = NewServerSsl(server_ctx_, client_leg.fd.get());
    engine_->Pipe(std::move(client_leg), Leg{std::move(b->leg)}, closes_.Callback());

    const int backend_fd = b->app.get();
    const bool backend_stays = when == ClientClose::kBeforeBackend ||
                               when == ClientClose::kWithStreamOpen;
    const std::string more(1000, 'm');
    std::string at_backend;
    // kWithStreamOpen: `more` goes out once the client read the answer, so
    // no record holds both (the client would buffer part of `more`).
    std::promise<void> answer_read;
    std::thread backend([&] {
      at_backend = ReadPlain(backend_fd, kRequest.size());
      if (!testing::WriteAll(backend_fd, kAnswer)) return;
      if (when == ClientClose::kWithStreamOpen) {
        answer_read.get_future().wait_for(seconds(5));
        if (!testing::WriteAll(backend_fd, more)) return;
      }
      if (backend_stays) {
        char c;
        (void)::recv(backend_fd, &c, 1, 0);  // the client's end (EOF or reset)
      }
      b->app.Reset();
    });

    const int fd = a->app.get();
    TlsStream tls(NewClientSsl(client_ctx_, fd, "localhost"));
    EXPECT_TRUE(tls.Handshake().ok());
    EXPECT_TRUE(WriteAll(tls, kRequest));
    switch (when) {
      case ClientClose::kAfterAnswer:
      case ClientClose::kBeforeBackend:
        at_client = ReadExactly(tls, kAnswer.size());
        break;
      case ClientClose::kWithCloseNotifyUnread:
        at_client = ReadExactly(tls, kAnswer.size());
        EXPECT_TRUE(WaitForEvents(fd, POLLRDHUP));
        break;
      case ClientClose::kAfterCloseNotify:
        EXPECT_EQ(ReadToEnd(tls, at_client), TlsIo::kEof);
        break;
      case ClientClose::kWithAnswerUnread:
        EXPECT_TRUE(WaitForEvents(fd, POLLRDHUP));
        break;
      case ClientClose::kWithStreamOpen:
        at_client = ReadExactly(tls, kAnswer.size());
        answer_read.set_value();
        // All of `more` is in: one record or more, 22 bytes of TLS 1.3
        // overhead each, and no first record alone reaches this.
        EXPECT_TRUE(WaitForQueued(fd, static_cast<int>(more.size()) + 22));
        break;
    }
    a->app.Reset();  // no close_notify
    backend.join();
    EXPECT_EQ(at_backend, kRequest);
    auto closed = closes_.WaitFor(before + 1);
    EXPECT_EQ(closed.size(), before + 1);
    return closed.size() > before ? closed[before] : PairStats{};
  }

  // Runs `when` kRounds times; every round must end `cause` with the
  // answer delivered whole.
  void ExpectEvery(ClientClose when, CloseCause cause, bool answer_read, uint64_t delivered) {
    for (int round = 0; round < kRounds; ++round) {
      SCOPED_TRACE(::testing::Message() << "round " << round);
      std::string at_client;
      PairStats s = Exchange(when, at_client);
      EXPECT_EQ(s.cause, cause) << CloseCauseName(s.cause) << ": " << s.detail;
      EXPECT_NE(s.detail.find("leg A"), std::string::npos) << s.detail;
      EXPECT_EQ(s.a_to_b, kRequest.size());
      EXPECT_EQ(s.b_to_a, delivered);
      EXPECT_EQ(at_client, answer_read ? kAnswer : "");
      if (::testing::Test::HasFailure()) return;
    }
  }
};

TEST_F(TlsTruncationTest, ClosesAsTheAnswerEndsIsTruncated) {
  ExpectEvery(ClientClose::kAfterAnswer, CloseCause::kTruncated, true, kAnswer.size());
}

TEST_F(TlsTruncationTest, ClosesWithTheCloseNotifyUnreadIsTruncated) {
  ExpectEvery(ClientClose::kWithCloseNotifyUnread, CloseCause::kTruncated, true, kAnswer.size());
}

TEST_F(TlsTruncationTest, ClosesAfterReadingTheCloseNotifyIsTruncated) {
  ExpectEvery(ClientClose::kAfterCloseNotify, CloseCause::kTruncated, true, kAnswer.size());
}

// The client chose not to read what it was sent; nothing was still owed.
TEST_F(TlsTruncationTest, ClosesWithTheWholeAnswerUnreadIsTruncated) {
  ExpectEvery(ClientClose::kWithAnswerUnread, CloseCause::kTruncated, false, kAnswer.size());
}

TEST_F(TlsTruncationTest, ClosesBeforeTheBackendIsTruncated) {
  ExpectEvery(ClientClose::kBeforeBackend, CloseCause::kTruncated, true, kAnswer.size());
}

// A reset while the backend's stream is still open loses what it sent.
TEST_F(TlsTruncationTest, ResetWhileTheBackendStreamIsOpenIsReset) {
  ExpectEvery(ClientClose::kWithStreamOpen, CloseCause::kReset, true, kAnswer.size() + 1000);
}

// The client uploads, then closes (FIN, nothing unread) without
// close_notify before the backend read it all. OpenSSL's alert for that EOF
// reaches the client's closed socket, whose kernel answers with RST (EPIPE
// on the relay's leg): that must not end the pair (kReset, the upload's
// tail dropped). The upload arrives whole, then a FIN; kTruncated.
TEST_F(TlsTruncationTest, ClosesMidUploadIsTruncatedAndTheUploadArrives) {
  constexpr uint64_t kUpload = 2 << 20;
  // No session tickets: a client never reads them here, and unread input
  // would make its own close a reset that drops the upload's unsent tail.
  SSL_CTX_set_num_tickets(server_ctx_.get(), 0);
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(::testing::Message() << "round " << round);
    const size_t before = closes_.count();
    auto a = testing::MakeLegPair(AF_INET);
    auto b = testing::MakeLegPair(AF_INET);
    ASSERT_TRUE(a.ok() && b.ok());
    Leg client_leg{std::move(a->leg)};
    client_leg.ssl = NewServerSsl(server_ctx_, client_leg.fd.get());
    engine_->Pipe(std::move(client_leg), Leg{std::move(b->leg)}, closes_.Callback());
    std::promise<void> client_gone;
    std::thread client([&, fd = a->app.get()] {
      TlsStream tls(NewClientSsl(client_ctx_, fd, "localhost"));
      if (!tls.Handshake().ok()) return;
      std::string upload(kUpload, '\0');
      testing::FillPattern(1, 0, upload.data(), upload.size());
      (void)WriteAll(tls, upload);
      a->app.Reset();  // FIN after the upload (the kernel still sends it), no close_notify
      client_gone.set_value();
    });
    // Reading starts once the client is gone (the socket buffers on the
    // way hold the upload), so its tail waits in the relay meanwhile; at
    // most 2 s, should they not.
    client_gone.get_future().wait_for(seconds(2));
    testing::Received at_backend = ReceiveSlowly(b->app.get(), 1);
    client.join();
    EXPECT_EQ(at_backend.bytes, kUpload);
    EXPECT_EQ(at_backend.first_mismatch, -1);
    EXPECT_EQ(at_backend.error, 0);
    b->app.Reset();
    auto closed = closes_.WaitFor(before + 1);
    ASSERT_EQ(closed.size(), before + 1);
    EXPECT_EQ(closed[before].cause, CloseCause::kTruncated) << closed[before].detail;
    EXPECT_EQ(closed[before].a_to_b, kUpload);
    EXPECT_EQ(closed[before].b_to_a, 0u);
    if (::testing::Test::HasFailure()) return;
  }
}

// The case as reported: Python's imaplib over TLS (greeting, LOGOUT, then
// its shutdown(SHUT_RDWR) and close, never a close_notify), to a backend
// that answers and closes. Every round is kTruncated.
TEST_F(TlsTruncationTest, PythonImaplibLogoutIsTruncated) {
  const char* python = "/usr/bin/python3";
  if (::access(python, X_OK) != 0) GTEST_SKIP() << python << " not found";
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), kRounds), 0);
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string script =
      "import imaplib, ssl, sys\n"
      "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
      "for _ in range(int(sys.argv[3])):\n"
      "    imap = imaplib.IMAP4_SSL('localhost', int(sys.argv[1]), ssl_context=ctx, timeout=10)\n"
      "    imap.logout()\n";
  const std::string port = std::to_string(ntohs(addr.sin_port));
  const std::string rounds = std::to_string(kRounds);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl(python, python, "-c", script.c_str(), port.c_str(), certs_->ca.cert.c_str(),
            rounds.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const std::string greeting = "* OK ready\r\n";
  size_t answered = 0;  // bytes of the answers the backend sent, in total
  size_t requested = 0;
  for (int round = 0; round < kRounds; ++round) {
    pollfd p{listener.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1) << "round " << round << ": no client";
    UniqueFd client(::accept(listener.get(), nullptr, nullptr));
    ASSERT_TRUE(client.valid());
    auto b = testing::MakeLegPair(AF_INET);
    ASSERT_TRUE(b.ok());
    Leg client_leg{std::move(client)};
    client_leg.ssl = NewServerSsl(server_ctx_, client_leg.fd.get());
    engine_->Pipe(std::move(client_leg), Leg{std::move(b->leg)}, closes_.Callback());
    // The backend: a greeting, CAPABILITY answered, and LOGOUT answered
    // with BYE and OK, then it closes.
    const int fd = b->app.get();
    ASSERT_TRUE(testing::WriteAll(fd, greeting));
    answered += greeting.size();
    for (int command = 0; command < 4; ++command) {
      std::string line;
      char c;
      while (line.size() < 100 && ::recv(fd, &c, 1, 0) == 1 && (line += c).back() != '\n') {
      }
      requested += line.size();
      const std::string tag = line.substr(0, line.find(' '));
      const bool logout = line.find(" LOGOUT\r\n") != std::string::npos;
      ASSERT_TRUE(logout || line.find(" CAPABILITY\r\n") != std::string::npos) << line;
      const std::string answer = logout ? "* BYE logging out\r\n" + tag + " OK LOGOUT completed\r\n"
                                        : "* CAPABILITY IMAP4rev1\r\n" + tag + " OK done\r\n";
      ASSERT_TRUE(testing::WriteAll(fd, answer));
      answered += answer.size();
      if (logout) break;
    }
    b->app.Reset();
  }
  int status = -1;
  ASSERT_TRUE(testing::WaitFor([&] { return ::waitpid(pid, &status, WNOHANG) == pid; },
                               seconds(20)));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  auto closed = closes_.WaitFor(kRounds);
  ASSERT_EQ(closed.size(), static_cast<size_t>(kRounds));
  uint64_t a_to_b = 0, b_to_a = 0;
  for (const PairStats& s : closed) {
    EXPECT_EQ(s.cause, CloseCause::kTruncated) << CloseCauseName(s.cause) << ": " << s.detail;
    a_to_b += s.a_to_b;
    b_to_a += s.b_to_a;
  }
  EXPECT_EQ(a_to_b, requested);
  EXPECT_EQ(b_to_a, answered);
}

}  // namespace
}  // namespace zrelay
