// How a TLS peer that ends without close_notify ends its pair, in the
// orders real peers produce, per relay mode: kTruncated, after its bytes
// were delivered.
#include "tests/relay/tls_relay_base.h"

namespace zrelay {
namespace {

using testing::FillPattern;
using testing::kNoLimit;
using testing::ReadExactly;
using testing::TlsPeer;
using testing::TlsReceived;
using testing::TlsRelayBase;

// ---------------------------------------------------------------------------
// Truncation: a TLS peer whose stream ends without close_notify, in the
// orders real peers produce, per relay mode.

class TlsTruncationTest : public TlsRelayBase, public ::testing::WithParamInterface<RelayMode> {
 protected:
  void SetUp() override { StartEngine(GetParam()); }

  struct Legs {
    testing::LegPair a;  // client side
    testing::LegPair b;  // backend side
  };
  // Two leg pairs relayed by Pipe(), TLS as asked.
  Legs PipeLegs(bool client_tls, bool backend_tls) {
    before_ = closes_.count();
    auto a = testing::MakeLegPair(AF_INET);
    auto b = testing::MakeLegPair(AF_INET);
    EXPECT_TRUE(a.ok() && b.ok());
    Leg la{std::move(a->leg)}, lb{std::move(b->leg)};
    if (client_tls) la.ssl = NewServerSsl(server_ctx_, la.fd.get());
    if (backend_tls) lb.ssl = NewClientSsl(client_ctx_, lb.fd.get(), "localhost");
    engine_->Pipe(std::move(la), std::move(lb), closes_.Callback());
    return Legs{std::move(a.value()), std::move(b.value())};
  }

  // How the pair PipeLegs() made last closed.
  PairStats Closed() {
    auto closed = closes_.WaitFor(before_ + 1);
    EXPECT_EQ(closed.size(), before_ + 1);
    return closed.size() > before_ ? closed[before_] : PairStats{};
  }

  size_t before_ = 0;  // pairs closed before the last PipeLegs()
};

// Regression test: the client's truncation used to end the pair as kError
// ("connection already failed") once the backend's next bytes were written
// towards it, dropping what the client had sent. Now every byte the client
// sent reaches the backend, the backend's bytes reach the client up to the
// truncation (the rest are discarded until the backend finishes), and the
// pair reports kTruncated.
TEST_P(TlsTruncationTest, ClientShutsDownWithoutCloseNotifyWhileTheBackendSends) {
  constexpr uint64_t kUp = 1 << 20;
  Legs legs = PipeLegs(/*client_tls=*/true, /*backend_tls=*/false);
  testing::Received at_backend;
  std::atomic<bool> request_ended{false};
  uint64_t backend_sent = 0;
  std::thread reader([&, fd = legs.b.app.get()] {
    at_backend = testing::ReceivePattern(fd, 1);
    request_ended = true;
  });
  // Streams until the request has ended, then finishes (at most 256 MiB).
  std::thread sender([&, fd = legs.b.app.get()] {
    constexpr uint64_t kChunk = 64 << 10;
    while (!request_ended && backend_sent < (uint64_t{256} << 20)) {
      std::vector<char> buf(kChunk);
      FillPattern(2, backend_sent, buf.data(), buf.size());
      if (!testing::WriteAll(fd, std::string(buf.data(), buf.size()))) break;
      backend_sent += kChunk;
    }
    ::shutdown(fd, SHUT_WR);
  });
  TlsReceived at_client;
  {
    TlsPeer client(client_ctx_.get(), legs.a.app.get(), false);
    ASSERT_TRUE(client.Handshake());
    ASSERT_TRUE(client.Send(1, kUp));
    ::shutdown(legs.a.app.get(), SHUT_WR);  // FIN, no close_notify; keeps reading
    at_client = client.ReceiveAll(2);
  }
  reader.join();
  sender.join();
  PairStats s = Closed();
  EXPECT_EQ(s.cause, CloseCause::kTruncated) << s.detail;
  EXPECT_NE(s.detail.find("leg A"), std::string::npos) << s.detail;
  EXPECT_EQ(s.a_to_b, kUp);
  EXPECT_EQ(at_backend.bytes, kUp);
  EXPECT_EQ(at_backend.first_mismatch, -1);
  EXPECT_EQ(at_backend.error, 0);
  EXPECT_TRUE(at_client.intact);
  EXPECT_FALSE(at_client.close_notify);
  EXPECT_EQ(at_client.bytes, s.b_to_a);
  EXPECT_LE(s.b_to_a, backend_sent);
}

// The backend finishes first; then the client reads everything and closes
// its socket without close_notify.
TEST_P(TlsTruncationTest, ClientClosesWithoutCloseNotifyAfterTheBackendFinished) {
  constexpr uint64_t kUp = 1 << 20, kDown = 2 << 20;
  for (bool backend_tls : {false, true}) {
    SCOPED_TRACE(backend_tls ? "TLS backend" : "plain backend");
    Legs legs = PipeLegs(/*client_tls=*/true, backend_tls);
    uint64_t backend_got = 0;
    bool backend_saw_end = false;
    std::thread backend([&, fd = legs.b.app.get()] {
      if (backend_tls) {
        TlsPeer peer(server_ctx_.get(), fd, true);
        if (!peer.Handshake()) return;
        backend_got = peer.ReceiveAll(1, kUp).bytes;
        peer.Send(2, kDown);
        peer.CloseNotify();
        // zrelay passes the client's end on with close_notify of its own.
        TlsReceived rest = peer.ReceiveAll(1);
        backend_saw_end = rest.bytes == 0 && rest.close_notify;
      } else {
        backend_got = ReadExactly(fd, 1, kUp);
        testing::SendPattern(fd, 2, kDown);
        testing::Received rest = testing::ReceivePattern(fd, 1);
        backend_saw_end = rest.bytes == 0 && rest.error == 0;
      }
    });
    TlsReceived at_client;
    {
      TlsPeer client(client_ctx_.get(), legs.a.app.get(), false);
      ASSERT_TRUE(client.Handshake());
      ASSERT_TRUE(client.Send(1, kUp));
      at_client = client.ReceiveAll(2);
    }
    legs.a.app.Reset();  // everything read: close() sends FIN
    backend.join();
    PairStats s = Closed();
    EXPECT_EQ(s.cause, CloseCause::kTruncated) << s.detail;
    EXPECT_NE(s.detail.find("leg A"), std::string::npos) << s.detail;
    EXPECT_EQ(s.a_to_b, kUp);
    EXPECT_EQ(s.b_to_a, kDown);
    EXPECT_EQ(backend_got, kUp);
    EXPECT_TRUE(backend_saw_end);
    EXPECT_TRUE(at_client.intact && at_client.close_notify);
    EXPECT_EQ(at_client.bytes, kDown);
  }
}

// The client shuts down without close_notify and the backend, having read
// it all, closes with nothing more to say.
TEST_P(TlsTruncationTest, ClientShutsDownWithoutCloseNotifyThenTheBackendCloses) {
  Legs legs = PipeLegs(/*client_tls=*/true, /*backend_tls=*/false);
  {
    TlsPeer client(client_ctx_.get(), legs.a.app.get(), false);
    ASSERT_TRUE(client.Handshake());
    ASSERT_TRUE(client.Send(1, 100000));
    ::shutdown(legs.a.app.get(), SHUT_WR);  // FIN, no close_notify
    testing::Received r = testing::ReceivePattern(legs.b.app.get(), 1);
    EXPECT_EQ(r.bytes, 100000u);
    EXPECT_EQ(r.first_mismatch, -1);
    EXPECT_EQ(r.error, 0);
    legs.b.app.Reset();
    TlsReceived at_client = client.ReceiveAll(2);
    EXPECT_EQ(at_client.bytes, 0u);
  }
  PairStats s = Closed();
  EXPECT_EQ(s.cause, CloseCause::kTruncated) << s.detail;
  EXPECT_NE(s.detail.find("leg A"), std::string::npos) << s.detail;
  EXPECT_EQ(s.a_to_b, 100000u);
  EXPECT_EQ(s.b_to_a, 0u);
}

// Regression test: with TLS origination, a backend that ended without
// close_notify made the client's later FIN fail the pair as kError (its
// close_notify could not be sent); now a plain FIN goes to the backend and
// the pair reports kTruncated. Both orders: the backend's direction ends
// first, or the client's does.
TEST_P(TlsTruncationTest, BackendEndsWithoutCloseNotify) {
  constexpr uint64_t kUp = 700000, kDown = 1500000;
  for (bool client_tls : {false, true}) {
    for (bool backend_first : {true, false}) {
      SCOPED_TRACE(::testing::Message()
                   << "client_tls=" << client_tls << " backend_first=" << backend_first);
      Legs legs = PipeLegs(client_tls, /*backend_tls=*/true);
      uint64_t backend_got = 0;
      std::thread backend([&, fd = legs.b.app.get()] {
        TlsPeer peer(server_ctx_.get(), fd, true);
        if (!peer.Handshake()) return;
        // Backend first: it answers once it has the request, before the
        // client's end; else it reads to the client's end (close_notify).
        TlsReceived got = peer.ReceiveAll(1, backend_first ? kUp : kNoLimit);
        backend_got = got.intact && (backend_first || got.close_notify) ? got.bytes : 0;
        peer.Send(2, kDown);
        ::shutdown(fd, SHUT_WR);  // FIN, no close_notify
      });
      int fd = legs.a.app.get();
      std::unique_ptr<TlsPeer> tls;
      if (client_tls) {
        tls = std::make_unique<TlsPeer>(client_ctx_.get(), fd, false);
        ASSERT_TRUE(tls->Handshake());
      }
      auto finish = [&] {
        if (tls) tls->CloseNotify();
        ::shutdown(fd, SHUT_WR);
      };
      if (client_tls) {
        ASSERT_TRUE(tls->Send(1, kUp));
      } else {
        ASSERT_EQ(testing::SendPattern(fd, 1, kUp, 64 << 10, false), kUp);
      }
      if (!backend_first) finish();
      uint64_t at_client = 0;
      bool clean_end = false;
      if (client_tls) {
        // zrelay ends the client's leg with a close_notify of its own.
        TlsReceived r = tls->ReceiveAll(2);
        at_client = r.intact ? r.bytes : 0;
        clean_end = r.close_notify;
      } else {
        testing::Received r = testing::ReceivePattern(fd, 2);
        at_client = r.first_mismatch == -1 ? r.bytes : 0;
        clean_end = r.error == 0;
      }
      if (backend_first) finish();
      backend.join();
      // The backend's socket sees the relay's end of it: FIN, not reset.
      testing::Received rest = testing::ReceivePattern(legs.b.app.get(), 0);
      EXPECT_EQ(rest.error, 0);
      PairStats s = Closed();
      EXPECT_EQ(s.cause, CloseCause::kTruncated) << s.detail;
      EXPECT_NE(s.detail.find("leg B"), std::string::npos) << s.detail;
      EXPECT_EQ(s.a_to_b, kUp);
      EXPECT_EQ(s.b_to_a, kDown);
      EXPECT_EQ(backend_got, kUp);
      EXPECT_EQ(at_client, kDown);
      EXPECT_TRUE(clean_end);
    }
  }
}

// The same exchanges with close_notify on every TLS end are kDone.
TEST_P(TlsTruncationTest, CloseNotifyOnBothEndsIsDone) {
  size_t n = 0;
  for (auto [client_tls, backend_tls] :
       {std::pair{true, false}, std::pair{false, true}, std::pair{true, true}}) {
    SCOPED_TRACE(::testing::Message()
                 << "client_tls=" << client_tls << " backend_tls=" << backend_tls);
    Exchange(client_tls, backend_tls, 1 << 20, 2 << 20);
    auto closed = closes_.WaitFor(++n);
    ASSERT_EQ(closed.size(), n);
    EXPECT_EQ(closed.back().cause, CloseCause::kDone) << closed.back().detail;
    EXPECT_EQ(closed.back().a_to_b, uint64_t{1} << 20);
    EXPECT_EQ(closed.back().b_to_a, uint64_t{2} << 20);
  }
}

// A TLS peer that resets after its data is kReset, not kTruncated.
TEST_P(TlsTruncationTest, ResetIsStillReset) {
  for (bool client_side : {true, false}) {
    SCOPED_TRACE(client_side ? "client resets" : "backend resets");
    Legs legs = PipeLegs(client_side, !client_side);
    testing::LegPair& resetting = client_side ? legs.a : legs.b;
    testing::LegPair& other = client_side ? legs.b : legs.a;
    {
      TlsPeer peer(client_side ? client_ctx_.get() : server_ctx_.get(), resetting.app.get(),
                   !client_side);
      ASSERT_TRUE(peer.Handshake());
      ASSERT_TRUE(peer.Send(1, 100000));
      // The bytes are through before the reset, so it cannot overtake them.
      EXPECT_EQ(ReadExactly(other.app.get(), 1, 100000), 100000u);
    }
    (void)SetLingerZero(resetting.app.get());
    resetting.app.Reset();
    PairStats s = Closed();
    EXPECT_EQ(s.cause, CloseCause::kReset) << s.detail;
    EXPECT_EQ(s.a_to_b + s.b_to_a, 100000u);
    // The other peer hears of it as a reset too.
    EXPECT_EQ(testing::ReceivePattern(other.app.get(), 0).error, ECONNRESET);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, TlsTruncationTest,
                         ::testing::Values(RelayMode::kSplice, RelayMode::kCopy, RelayMode::kAuto),
                         [](const ::testing::TestParamInfo<RelayMode>& info) {
                           return RelayModeName(info.param);
                         });

}  // namespace
}  // namespace zrelay
