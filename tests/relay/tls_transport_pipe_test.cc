// A TLS leg cannot carry its bytes through a kernel pipe: it says so with
// can_splice() and refuses the pipe calls without touching the pipe or the
// socket.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>
#include <string>

#include "relay/pipe_pool.h"
#include "relay/tls_transport.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

struct NoopHandler : FdHandler {
  void OnFdEvent(FdWatch&, uint32_t) override {}
};

TEST(TlsTransportPipe, RefusesThePipeCallsWithEnosys) {
  auto loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok());
  auto pair = testing::UnixPair();
  ASSERT_TRUE(pair.ok());
  NoopHandler handler;
  FdWatch watch;
  ASSERT_TRUE(watch.Register(*loop.value(), pair->server.get(), &handler).ok());
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), SSL_CTX_free);
  ASSERT_NE(ctx, nullptr);
  SSL* ssl = SSL_new(ctx.get());
  ASSERT_NE(ssl, nullptr);
  ASSERT_EQ(SSL_set_fd(ssl, pair->server.get()), 1);
  TlsTransport io(ssl, watch, loop.value()->sys());
  EXPECT_FALSE(io.can_splice());

  PipePool pipes(65536, 1);
  std::unique_ptr<KernelPipe> pipe = pipes.Take();
  ASSERT_NE(pipe, nullptr);
  // Bytes waiting on the socket stay there: a refused call reads nothing.
  ASSERT_TRUE(testing::WriteAll(pair->client.get(), "hello"));
  IoResult in = io.ReadToPipe(*pipe, pipe->capacity);
  EXPECT_EQ(in.status, IoStatus::kError);
  EXPECT_EQ(in.err, ENOSYS);
  EXPECT_EQ(pipe->bytes, 0u);
  IoResult out = io.WriteFromPipe(*pipe);
  EXPECT_EQ(out.status, IoStatus::kError);
  EXPECT_EQ(out.err, ENOSYS);
  char buf[8];
  EXPECT_EQ(::recv(pair->server.get(), buf, sizeof(buf), MSG_DONTWAIT), 5);
  watch.Unregister();
  pipes.Return(std::move(pipe));
}

}  // namespace
}  // namespace zrelay
