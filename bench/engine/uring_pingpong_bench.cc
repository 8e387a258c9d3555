// Round trip of a 128-byte message over one loopback TCP connection, both
// ends driven by the benchmark thread: edge-triggered epoll with read/write
// against io_uring recv/send on a UringRing (one submit per turn). Reports
// the time per round trip and the kernel entries it took.
//
//   bazel run -c opt //bench/engine:uring_pingpong_bench
#include <sys/epoll.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cstring>

#include "engine/check.h"
#include "engine/uring_ring.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

constexpr size_t kMessage = 128;

// Reads what `fd` holds; a read shorter than the buffer means it is drained
// (the next byte brings a new edge). Returns the bytes read.
size_t Drain(int fd, char* buf, size_t size, uint64_t& syscalls) {
  size_t total = 0;
  while (true) {
    ssize_t n = ::read(fd, buf, size);
    ++syscalls;
    if (n <= 0) return total;
    total += static_cast<size_t>(n);
    if (static_cast<size_t>(n) < size) return total;
  }
}

void BM_PingPongEpoll(benchmark::State& state) {
  testing::SocketPair pair = testing::TcpPair().value();
  const int client = pair.client.get();
  const int server = pair.server.get();
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  for (int fd : {client, server}) {
    struct epoll_event ev {};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.fd = fd;
    ZR_CHECK(::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl");
  }
  char message[kMessage];
  std::memset(message, 'p', sizeof(message));
  char buf[4096];
  uint64_t syscalls = 0;
  for (auto _ : state) {
    ZR_CHECK(::write(client, message, kMessage) == kMessage, "write");
    ++syscalls;
    size_t back = 0;
    while (back < kMessage) {
      struct epoll_event events[2];
      int n = ::epoll_wait(epoll.get(), events, 2, 1000);
      ++syscalls;
      ZR_CHECK(n > 0, "epoll_wait: nothing within 1 s");
      for (int i = 0; i < n; ++i) {
        if (events[i].data.fd == server) {
          size_t got = Drain(server, buf, sizeof(buf), syscalls);
          ZR_CHECK(::write(server, buf, got) == static_cast<ssize_t>(got), "echo write");
          ++syscalls;
        } else {
          back += Drain(client, buf, sizeof(buf), syscalls);
        }
      }
    }
  }
  state.counters["syscalls_per_rt"] =
      benchmark::Counter(static_cast<double>(syscalls), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_PingPongEpoll);

// Both ends on one ring: the server echoes each recv with a send and re-arms
// its recv once the send is done; the client keeps a recv armed.
class UringPingPong : public UringHandler {
 public:
  UringPingPong(UringRing& ring, int client, int server)
      : ring_(ring), client_(client), server_(server) {
    std::memset(message_, 'p', sizeof(message_));
    ring_.Recv(server_recv_, server_, server_buf_, sizeof(server_buf_));
    ring_.Recv(client_recv_, client_, client_buf_, sizeof(client_buf_));
  }
  // Leaves with every op finished, so the ring can go.
  ~UringPingPong() {
    // Cancel inside the loop: a send finishing late re-arms its recv.
    for (int i = 0; i < 100 && ring_.in_flight() > 0; ++i) {
      ring_.Cancel(server_recv_);
      ring_.Cancel(client_recv_);
      ring_.RunOnce(milliseconds(10));
    }
  }

  void RoundTrip() {
    back_ = 0;
    ring_.Send(client_send_, client_, message_, kMessage);
    while (back_ < kMessage) ZR_CHECK(ring_.RunOnce(seconds(1)) > 0, "io_uring: nothing within 1 s");
  }

 private:
  void OnCompletion(UringOp& op, int res, uint32_t) override {
    if (res == -ECANCELED) return;
    ZR_CHECK(res > 0, "io_uring ping-pong: %s", std::strerror(-res));
    if (&op == &server_recv_) {
      ring_.Send(server_send_, server_, server_buf_, static_cast<size_t>(res));
    } else if (&op == &server_send_) {
      ring_.Recv(server_recv_, server_, server_buf_, sizeof(server_buf_));
    } else if (&op == &client_recv_) {
      back_ += static_cast<size_t>(res);
      ring_.Recv(client_recv_, client_, client_buf_, sizeof(client_buf_));
    }
  }

  UringRing& ring_;
  int client_;
  int server_;
  char message_[kMessage];
  char server_buf_[4096];
  char client_buf_[4096];
  size_t back_ = 0;
  UringOp client_send_{this};
  UringOp client_recv_{this};
  UringOp server_send_{this};
  UringOp server_recv_{this};
};

void BM_PingPongUring(benchmark::State& state) {
  testing::SocketPair pair = testing::TcpPair().value();
  Result<std::unique_ptr<UringRing>> ring = UringRing::Create(64);
  if (!ring) {
    state.SkipWithError(ring.error().message().c_str());
    return;
  }
  uint64_t submits_before = 0;
  {
    UringPingPong pingpong(**ring, pair.client.get(), pair.server.get());
    submits_before = (*ring)->stats().submits;
    for (auto _ : state) pingpong.RoundTrip();
    state.counters["syscalls_per_rt"] = benchmark::Counter(
        static_cast<double>((*ring)->stats().submits - submits_before),
        benchmark::Counter::kAvgIterations);
  }
  state.SetLabel((*ring)->SetupFlagsName());
}
BENCHMARK(BM_PingPongUring);

}  // namespace
}  // namespace zrelay
