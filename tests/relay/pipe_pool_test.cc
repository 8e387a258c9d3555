// PipePool on real pipes: the size the kernel grants, the cap, reuse of empty
// pipes, and the rule that a pipe still holding bytes is closed, never pooled
// (the next pair would receive another pair's data).
#include "relay/pipe_pool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <vector>

namespace zrelay {
namespace {

size_t PipeMaxSize() {
  std::ifstream in("/proc/sys/fs/pipe-max-size");
  size_t v = 0;
  in >> v;
  return v;
}

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

// Bytes waiting in a pipe, by reading them out (non-blocking read end).
size_t DrainPipe(int read_end) {
  char buf[4096];
  size_t total = 0;
  for (;;) {
    ssize_t n = ::read(read_end, buf, sizeof(buf));
    if (n <= 0) return total;
    total += static_cast<size_t>(n);
  }
}

TEST(PipePoolTest, CapacityIsWhatTheKernelGranted) {
  for (size_t request : {size_t{4096}, size_t{65536}, size_t{100000}, size_t{1} << 20}) {
    SCOPED_TRACE("request " + std::to_string(request));
    PipePool pool(request, 4);
    auto pipe = pool.Take();
    ASSERT_NE(pipe, nullptr);
    int granted = ::fcntl(pipe->write_end.get(), F_GETPIPE_SZ);
    ASSERT_GT(granted, 0);
    EXPECT_EQ(pipe->capacity, static_cast<size_t>(granted));
    EXPECT_EQ(::fcntl(pipe->read_end.get(), F_GETPIPE_SZ), granted);
    // The kernel rounds up to a power-of-two number of pages.
    EXPECT_GE(pipe->capacity, request);
    EXPECT_EQ(pipe->bytes, 0u);
    // Both ends non-blocking (splice with SPLICE_F_NONBLOCK relies on the
    // pipe never blocking either) and close-on-exec.
    EXPECT_TRUE(::fcntl(pipe->read_end.get(), F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(pipe->write_end.get(), F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(pipe->read_end.get(), F_GETFD) & FD_CLOEXEC);
    pool.Return(std::move(pipe));
  }
}

// A request above /proc/sys/fs/pipe-max-size is refused by F_SETPIPE_SZ
// (unless the process has CAP_SYS_RESOURCE); the pipe keeps the size it got
// and capacity must say that size, not the request.
TEST(PipePoolTest, OversizedRequestUsesTheSizeThePipeReallyHas) {
  size_t max = PipeMaxSize();
  ASSERT_GT(max, 0u);
  PipePool pool(max * 4, 1);
  auto pipe = pool.Take();
  ASSERT_NE(pipe, nullptr);
  int real = ::fcntl(pipe->write_end.get(), F_GETPIPE_SZ);
  EXPECT_EQ(pipe->capacity, static_cast<size_t>(real));
  // And the capacity is really usable: fill the pipe to exactly capacity.
  std::vector<char> buf(pipe->capacity, 'x');
  size_t written = 0;
  while (written < buf.size()) {
    ssize_t n = ::write(pipe->write_end.get(), buf.data() + written, buf.size() - written);
    ASSERT_GT(n, 0) << "pipe took only " << written << " of capacity " << pipe->capacity;
    written += static_cast<size_t>(n);
  }
  char one = 'y';
  EXPECT_EQ(::write(pipe->write_end.get(), &one, 1), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(DrainPipe(pipe->read_end.get()), pipe->capacity);
  pool.Return(std::move(pipe));
}

TEST(PipePoolTest, CapIsRespectedAndExhaustionCounted) {
  PipePool pool(65536, 3);
  std::vector<std::unique_ptr<KernelPipe>> taken;
  for (int i = 0; i < 3; ++i) {
    taken.push_back(pool.Take());
    ASSERT_NE(taken.back(), nullptr) << i;
  }
  EXPECT_EQ(pool.stats().in_use, 3u);
  EXPECT_EQ(pool.stats().created, 3u);
  EXPECT_EQ(pool.stats().exhausted, 0u);

  EXPECT_EQ(pool.Take(), nullptr);
  EXPECT_EQ(pool.Take(), nullptr);
  EXPECT_EQ(pool.stats().exhausted, 2u);
  EXPECT_EQ(pool.stats().in_use, 3u);
  EXPECT_EQ(pool.stats().created, 3u);

  // One back: the next Take gets that very pipe, without creating one.
  KernelPipe* back = taken.back().get();
  pool.Return(std::move(taken.back()));
  taken.pop_back();
  auto again = pool.Take();
  EXPECT_EQ(again.get(), back);
  EXPECT_EQ(pool.stats().created, 3u);
  EXPECT_EQ(pool.Take(), nullptr);
  EXPECT_EQ(pool.stats().exhausted, 3u);
  pool.Return(std::move(again));
  for (auto& p : taken) pool.Return(std::move(p));
  EXPECT_EQ(pool.stats().in_use, 0u);
  EXPECT_EQ(pool.stats().pooled, 3u);
}

TEST(PipePoolTest, CapZeroNeverLendsAPipe) {
  PipePool pool(65536, 0);
  EXPECT_EQ(pool.Take(), nullptr);
  EXPECT_EQ(pool.stats().exhausted, 1u);
  EXPECT_EQ(pool.stats().created, 0u);
  EXPECT_EQ(pool.stats().in_use, 0u);
}

TEST(PipePoolTest, EmptyPipeIsPooledAndReused) {
  PipePool pool(65536, 4);
  auto pipe = pool.Take();
  ASSERT_NE(pipe, nullptr);
  KernelPipe* raw = pipe.get();
  int read_fd = pipe->read_end.get();
  int write_fd = pipe->write_end.get();
  // Use it: bytes in, bytes out, bookkeeping back to 0 as a pump would.
  ASSERT_EQ(::write(write_fd, "hello", 5), 5);
  pipe->bytes = 5;
  char buf[5];
  ASSERT_EQ(::read(read_fd, buf, 5), 5);
  pipe->bytes = 0;

  pool.Return(std::move(pipe));
  EXPECT_EQ(pool.stats().in_use, 0u);
  EXPECT_EQ(pool.stats().pooled, 1u);
  EXPECT_EQ(pool.stats().discarded_full, 0u);
  EXPECT_TRUE(IsOpen(read_fd));
  EXPECT_TRUE(IsOpen(write_fd));

  auto reused = pool.Take();
  ASSERT_NE(reused, nullptr);
  EXPECT_EQ(reused.get(), raw);
  EXPECT_EQ(reused->read_end.get(), read_fd);
  EXPECT_EQ(reused->write_end.get(), write_fd);
  EXPECT_EQ(reused->bytes, 0u);
  EXPECT_EQ(pool.stats().created, 1u);
  EXPECT_EQ(pool.stats().pooled, 0u);
  EXPECT_EQ(pool.stats().in_use, 1u);
  // Really empty: nothing of the earlier use leaks into the next borrower.
  EXPECT_EQ(::read(reused->read_end.get(), buf, 5), -1);
  EXPECT_EQ(errno, EAGAIN);
  pool.Return(std::move(reused));
}

// The rule from HAProxy's pipe.c: a pipe returned with bytes inside is
// closed (both ends), counted, and never handed to the next borrower.
TEST(PipePoolTest, PipeReturnedWithBytesIsClosedNotPooled) {
  PipePool pool(65536, 4);
  auto pipe = pool.Take();
  ASSERT_NE(pipe, nullptr);
  int read_fd = pipe->read_end.get();
  int write_fd = pipe->write_end.get();
  ASSERT_EQ(::write(write_fd, "secret", 6), 6);
  pipe->bytes = 6;

  pool.Return(std::move(pipe));
  EXPECT_EQ(pool.stats().discarded_full, 1u);
  EXPECT_EQ(pool.stats().pooled, 0u);
  EXPECT_EQ(pool.stats().in_use, 0u);
  // Both ends closed (checked before any new fd could reuse the numbers).
  EXPECT_FALSE(IsOpen(read_fd));
  EXPECT_FALSE(IsOpen(write_fd));

  auto fresh = pool.Take();
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(pool.stats().created, 2u);
  EXPECT_EQ(fresh->bytes, 0u);
  char buf[8];
  EXPECT_EQ(::read(fresh->read_end.get(), buf, sizeof(buf)), -1) << "a new pipe holds no data";
  EXPECT_EQ(errno, EAGAIN);
  pool.Return(std::move(fresh));
  EXPECT_EQ(pool.stats().pooled, 1u);
}

// A discarded pipe frees its slot under the cap.
TEST(PipePoolTest, DiscardedPipeFreesItsSlot) {
  PipePool pool(65536, 1);
  auto pipe = pool.Take();
  ASSERT_NE(pipe, nullptr);
  EXPECT_EQ(pool.Take(), nullptr);
  pipe->bytes = 1;  // pretend one byte is stuck in it
  ASSERT_EQ(::write(pipe->write_end.get(), "x", 1), 1);
  pool.Return(std::move(pipe));
  auto next = pool.Take();
  EXPECT_NE(next, nullptr);
  EXPECT_EQ(pool.stats().created, 2u);
  pool.Return(std::move(next));
}

TEST(PipePoolTest, GaugesTrackManyTakesAndReturns) {
  PipePool pool(16384, 8);
  std::vector<std::unique_ptr<KernelPipe>> held;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 8; ++i) {
      held.push_back(pool.Take());
      ASSERT_NE(held.back(), nullptr);
      EXPECT_EQ(pool.stats().in_use + pool.stats().pooled, 8u - (round == 0 ? 7u - i : 0u));
    }
    EXPECT_EQ(pool.stats().in_use, 8u);
    EXPECT_EQ(pool.stats().pooled, 0u);
    for (auto& p : held) pool.Return(std::move(p));
    held.clear();
    EXPECT_EQ(pool.stats().in_use, 0u);
    EXPECT_EQ(pool.stats().pooled, 8u);
  }
  EXPECT_EQ(pool.stats().created, 8u) << "pooled pipes are reused, not recreated";
  EXPECT_EQ(pool.stats().exhausted, 0u);
  EXPECT_EQ(pool.stats().discarded_full, 0u);
}

}  // namespace
}  // namespace zrelay
