#include "tests/load/load_test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "engine/socket.h"
#include "tools/load/runner.h"

namespace zrelay::load::testing {
namespace {

std::string LoopbackText(int family) { return family == AF_INET6 ? "[::1]:0" : "127.0.0.1:0"; }

void MakeNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  (void)::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// Every blocking wait in the proxy ends by this deadline.
constexpr int kProxyPollMs = 100;
constexpr Duration kProxyMaxLife = seconds(60);

}  // namespace

Result<Config> ParseConfig(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"zrelay-load"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return ParseArgs(static_cast<int>(argv.size()), argv.data());
}

Result<std::unique_ptr<TestBackend>> TestBackend::Start(const std::vector<std::string>& args,
                                                        int family) {
  std::vector<std::string> full = {"backend", "--listen", LoopbackText(family), "--quiet"};
  full.insert(full.end(), args.begin(), args.end());
  auto config = ParseConfig(full);
  if (!config.ok()) return config.error();
  std::unique_ptr<TestBackend> b(new TestBackend());
  b->config_ = *config;
  auto pool = WorkerPool::Start({.workers = b->config_.workers});
  if (!pool.ok()) return pool.error();
  b->pool_ = std::move(pool).value();
  auto backend = Backend::Start(*b->pool_, b->config_);
  if (!backend.ok()) return backend.error();
  b->backend_ = std::move(backend).value();
  return b;
}

void TestBackend::Stop() {
  if (backend_) backend_->Stop();
}

TestBackend::~TestBackend() {
  backend_.reset();
  if (pool_) pool_->Stop();
}

Result<Report> RunClientAt(const Address& target, std::vector<std::string> args) {
  args.push_back("--target");
  args.push_back(target.ToString());
  args.push_back("--quiet");
  auto config = ParseConfig(args);
  if (!config.ok()) return config.error();
  return RunClient(*config);
}

Result<std::unique_ptr<CorruptingProxy>> CorruptingProxy::Start(const Address& upstream,
                                                                uint64_t flip_up,
                                                                uint64_t flip_down) {
  std::unique_ptr<CorruptingProxy> p(new CorruptingProxy());
  p->upstream_ = upstream;
  p->flip_up_ = flip_up;
  p->flip_down_ = flip_down;
  auto listen_at = Address::Parse(upstream.family() == AF_INET6 ? "[::1]:0" : "127.0.0.1:0");
  auto listener = ListenOn(*listen_at, {.backlog = 16, .reuse_port = false});
  if (!listener.ok()) return listener.error();
  p->listener_ = std::move(listener).value();
  auto bound = LocalAddress(p->listener_.get());
  if (!bound.ok()) return bound.error();
  p->address_ = *bound;
  p->thread_ = std::thread([raw = p.get()] { raw->Serve(); });
  return p;
}

CorruptingProxy::~CorruptingProxy() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void CorruptingProxy::Serve() {
  const TimePoint end = Clock::now() + kProxyMaxLife;
  while (!stop_ && Clock::now() < end) {
    struct pollfd p {
      listener_.get(), POLLIN, 0
    };
    if (::poll(&p, 1, kProxyPollMs) != 1) continue;
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (client) Relay(std::move(client));
  }
}

void CorruptingProxy::Relay(UniqueFd client) {
  UniqueFd upstream(::socket(upstream_.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!upstream || ::connect(upstream.get(), upstream_.sockaddr(), upstream_.length()) != 0) {
    return;
  }
  MakeNonBlocking(client.get());
  MakeNonBlocking(upstream.get());
  (void)SetNoDelay(upstream.get());
  (void)SetNoDelay(client.get());
  // Non-blocking with a buffer per direction: an echo backend stops reading
  // while its replies are not read, so a proxy that blocked on one
  // direction would deadlock the other.
  struct Side {
    int from, to;
    uint64_t flip;
    uint64_t offset = 0;  // stream bytes read so far
    std::vector<char> buf = std::vector<char>(64 << 10);
    size_t len = 0, off = 0;
    bool eof = false, shut = false;
  };
  Side sides[2] = {{client.get(), upstream.get(), flip_up_},
                   {upstream.get(), client.get(), flip_down_}};
  const TimePoint end = Clock::now() + kProxyMaxLife;
  while (!stop_ && Clock::now() < end && !(sides[0].shut && sides[1].shut)) {
    // Side 0 reads the client and writes upstream; side 1 the reverse.
    short client_events = (!sides[0].eof && sides[0].len == 0 ? POLLIN : 0) |
                          (sides[1].off < sides[1].len ? POLLOUT : 0);
    short upstream_events = (!sides[1].eof && sides[1].len == 0 ? POLLIN : 0) |
                            (sides[0].off < sides[0].len ? POLLOUT : 0);
    struct pollfd p[2] = {{client.get(), client_events, 0}, {upstream.get(), upstream_events, 0}};
    if (::poll(p, 2, kProxyPollMs) < 0 && errno != EINTR) return;
    for (Side& s : sides) {
      if (!s.eof && s.len == 0) {
        ssize_t n = ::read(s.from, s.buf.data(), s.buf.size());
        if (n == 0) {
          s.eof = true;
        } else if (n > 0) {
          if (s.flip >= s.offset && s.flip < s.offset + static_cast<uint64_t>(n)) {
            s.buf[s.flip - s.offset] ^= 0x20;
            flipped_.fetch_add(1);
          }
          s.offset += static_cast<uint64_t>(n);
          s.len = static_cast<size_t>(n);
          s.off = 0;
        } else if (errno != EAGAIN && errno != EINTR) {
          return;  // a reset: closing both passes it on
        }
      }
      if (s.off < s.len) {
        ssize_t w = ::send(s.to, s.buf.data() + s.off, s.len - s.off, MSG_NOSIGNAL);
        if (w > 0) {
          s.off += static_cast<size_t>(w);
          if (s.off == s.len) s.len = s.off = 0;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          return;
        }
      }
      if (s.eof && s.len == 0 && !s.shut) {
        ::shutdown(s.to, SHUT_WR);  // pass the half-close on
        s.shut = true;
      }
    }
  }
}

Result<UniqueFd> SilentListener(int family, Address* bound) {
  auto at = Address::Parse(LoopbackText(family));
  auto fd = ListenOn(*at, {.backlog = 64, .reuse_port = false});
  if (!fd.ok()) return fd.error();
  auto local = LocalAddress(fd->get());
  if (!local.ok()) return local.error();
  *bound = *local;
  return fd;
}

Address ClosedPort(int family) {
  Address bound;
  {
    auto fd = SilentListener(family, &bound);
    (void)fd;
  }  // closed: connects now get RST (refused)
  return bound;
}

}  // namespace zrelay::load::testing
