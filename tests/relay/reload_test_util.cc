#include "tests/relay/reload_test_util.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "engine/socket.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay::testing {
namespace {

// Reads `len` bytes to EOF from blocking `fd`: the seed of the pattern they
// are (kOldSeed or kNewSeed), or 0 when they are neither, short or long.
uint64_t AnswerSeed(int fd, size_t len) {
  std::string got;
  char buf[64 << 10];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  if (got.size() != len) return 0;
  for (uint64_t seed : {kOldSeed, kNewSeed}) {
    std::string want(len, '\0');
    FillPattern(seed, 0, want.data(), len);
    if (got == want) return seed;
  }
  return 0;
}

}  // namespace

SeededBackend::SeededBackend(uint64_t seed) : seed_(seed) {
  auto fd = ListenOn(Loopback());
  if (!fd.ok()) return;
  fd_ = std::move(fd).value();
  SetBlocking(fd_.get(), true);
  address_ = LocalAddress(fd_.get()).value();
  thread_ = std::thread([this] { AcceptLoop(); });
}

SeededBackend::~SeededBackend() {
  ::shutdown(fd_.get(), SHUT_RDWR);  // ends the blocking accept
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  for (std::thread& t : connections_) t.join();
}

void SeededBackend::AcceptLoop() {
  for (;;) {
    int fd = ::accept(fd_.get(), nullptr, nullptr);
    if (fd < 0) return;
    ++accepted_;
    std::lock_guard<std::mutex> lock(mu_);
    connections_.emplace_back([this, fd] { Answer(fd); });
  }
}

void SeededBackend::Answer(int fd) {
  Received r = ReceivePattern(fd, kUpSeed);
  if (r.first_mismatch != -1) ok_ = false;
  SendPattern(fd, seed_, r.bytes, 64 << 10, /*shut_write=*/false);
  ::close(fd);
}

ClientResult RunClient(const Address& front, size_t bytes) {
  ClientResult result;
  Result<UniqueFd> fd = BlockingConnect(front);
  if (!fd) {
    result.connect_error = fd.error().code().value();
    return result;
  }
  if (SendPattern(fd->get(), kUpSeed, bytes) != bytes) return result;
  result.seed = AnswerSeed(fd->get(), bytes);
  return result;
}

ClientStream::ClientStream(const Address& front, int threads) : front_(front) {
  for (int t = 0; t < threads; ++t) threads_.emplace_back([this] { Loop(); });
}

void ClientStream::Stop() {
  stop_ = true;
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void ClientStream::Loop() {
  for (int i = 0; i < kMaxClients && !stop_; ++i) {
    const bool after = changed_.load();
    ClientResult r = RunClient(front_);
    std::lock_guard<std::mutex> lock(mu_);
    if (r.connect_error != 0) ++refused;
    if (r.connect_error == 0 && r.seed == 0) ++bad;
    if (r.seed == kOldSeed) ++old_seen;
    if (r.seed == kNewSeed) ++new_seen;
    if (after && r.seed == kOldSeed) ++old_after_change;
    ++done_;
    if (after) ++done_after_;
  }
}

HeldClient::HeldClient(const Address& front, const SeededBackend& backend) {
  const int before = backend.accepted();
  Result<UniqueFd> fd = BlockingConnect(front);
  if (!fd) return;
  fd_ = std::move(fd).value();
  const uint64_t sent =
      SendPattern(fd_.get(), kUpSeed, kHeldBytes / 2, 64 << 10, /*shut_write=*/false);
  connected_ =
      sent == kHeldBytes / 2 && WaitFor([&] { return backend.accepted() > before; }, seconds(10));
}

uint64_t HeldClient::Finish() {
  std::string rest(kHeldBytes / 2, '\0');
  FillPattern(kUpSeed, kHeldBytes / 2, rest.data(), rest.size());
  if (!WriteAll(fd_.get(), rest)) return 0;
  ::shutdown(fd_.get(), SHUT_WR);
  return AnswerSeed(fd_.get(), kHeldBytes);
}

}  // namespace zrelay::testing
