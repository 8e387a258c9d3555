#include "tools/admin/admin_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "engine/check.h"
#include "engine/socket.h"
#include "tools/admin/http_head.h"
#include "tools/admin/prometheus_text.h"
#include "tools/log/log.h"

namespace zrelay {
namespace {

// Accepts per loop turn, so a flood of connects cannot starve the clients
// already accepted.
constexpr size_t kAcceptsPerTurn = 64;
// Bytes of a client's input read per turn once its answer is on its way.
constexpr size_t kDiscardPerTurn = 64 << 10;
// After accept ran out of fds, how long the listening socket is left alone
// (it stays readable, and polling it would spin).
constexpr Duration kAcceptRetry = milliseconds(100);

// One admin client, from accept to close.
struct Client {
  enum class State {
    kReading,  // the request head
    kWriting,  // the answer
    // The answer is written and our side shut: reading (and dropping) what
    // the client still sends until its EOF, because closing with unread
    // input would send a reset that can destroy the answer in flight.
    kLingering,
  };
  UniqueFd fd;
  TimePoint deadline;
  State state = State::kReading;
  std::string received{};
  std::string answer{};
  size_t sent = 0;
};

HttpResponse Text(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

// poll()'s timeout until `until`: rounded up, so a deadline is never
// polled for just before it passes.
int PollTimeoutMs(TimePoint now, TimePoint until) {
  if (until <= now) return 0;
  return static_cast<int>(std::chrono::ceil<milliseconds>(until - now).count());
}

}  // namespace

class AdminServer::Loop {
 public:
  Loop(UniqueFd listener, AdminServerOptions options)
      : listener_(std::move(listener)),
        options_(std::move(options)),
        start_time_(
            std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                .count()) {}

  // Serves until `wake_fd` becomes readable, then closes every socket.
  void Run(int wake_fd) {
    std::vector<pollfd> polled;
    for (;;) {
      TimePoint now = Clock::now();
      std::erase_if(clients_, [now](const Client& c) { return c.deadline <= now; });
      TimePoint wake_at = now + seconds(60);  // nothing due: look again in a minute anyway
      const bool accepting = now >= accept_paused_until_;
      if (!accepting) wake_at = accept_paused_until_;
      polled.clear();
      polled.push_back({wake_fd, POLLIN, 0});
      polled.push_back({accepting ? listener_.get() : -1, POLLIN, 0});  // poll skips fd -1
      for (const Client& client : clients_) {
        short events = client.state == Client::State::kWriting ? POLLOUT : POLLIN;
        polled.push_back({client.fd.get(), events, 0});
        wake_at = std::min(wake_at, client.deadline);
      }
      if (::poll(polled.data(), polled.size(), PollTimeoutMs(now, wake_at)) < 0) {
        if (errno == EINTR) continue;
        Logf("admin: poll: %s; admin endpoint stopped", std::strerror(errno));
        break;
      }
      if (polled[0].revents != 0) break;
      now = Clock::now();
      for (size_t i = 0; i < clients_.size(); ++i) {
        if (polled[i + 2].revents != 0 && !Serve(clients_[i])) clients_[i].fd.Reset();
      }
      std::erase_if(clients_, [](const Client& c) { return !c.fd; });
      if (polled[1].revents != 0) Accept(now);
    }
    clients_.clear();
    listener_.Reset();
  }

 private:
  void Accept(TimePoint now) {
    for (size_t i = 0; i < kAcceptsPerTurn; ++i) {
      UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!fd) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          accept_paused_until_ = now + kAcceptRetry;
        }
        return;
      }
      if (clients_.size() >= options_.max_connections) {
        // Told at once rather than kept waiting behind clients that may be
        // stalling on purpose. One try: the buffer of a new socket has room.
        const std::string busy =
            FormatResponse(Text(503, "too many admin connections\n"), /*head_only=*/false);
        (void)::send(fd.get(), busy.data(), busy.size(), MSG_NOSIGNAL);
        continue;
      }
      clients_.push_back(Client{std::move(fd), now + options_.timeout});
    }
  }

  // Moves `client` on as far as its socket allows. False: close it.
  bool Serve(Client& client) {
    switch (client.state) {
      case Client::State::kReading:
        return Read(client);
      case Client::State::kWriting:
        return Write(client);
      case Client::State::kLingering:
        return Linger(client);
    }
    return false;
  }

  bool Read(Client& client) {
    char buffer[4096];
    for (;;) {
      ParsedHead head = ParseRequestHead(client.received, options_.max_head_bytes);
      switch (head.status) {
        case HeadStatus::kIncomplete:
          break;
        case HeadStatus::kBad:
          return Answer(client, Text(400, "bad request\n"), false);
        case HeadStatus::kTooLarge:
          return Answer(client, Text(431, "request head too large\n"), false);
        case HeadStatus::kComplete:
          return Answer(client, Route(head.request), head.request.method == "HEAD");
      }
      // Incomplete means below the limit: read up to it, never past (that
      // much without a blank line is a 431).
      const size_t room =
          std::min(sizeof(buffer), options_.max_head_bytes - client.received.size());
      ssize_t n = ::recv(client.fd.get(), buffer, room, 0);
      if (n == 0) return false;  // gone before a whole request
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      client.received.append(buffer, static_cast<size_t>(n));
    }
  }

  bool Answer(Client& client, const HttpResponse& response, bool head_only) {
    client.answer = FormatResponse(response, head_only);
    client.state = Client::State::kWriting;
    return Write(client);
  }

  bool Write(Client& client) {
    while (client.sent < client.answer.size()) {
      ssize_t n = ::send(client.fd.get(), client.answer.data() + client.sent,
                         client.answer.size() - client.sent, MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      client.sent += static_cast<size_t>(n);
    }
    ::shutdown(client.fd.get(), SHUT_WR);
    client.state = Client::State::kLingering;
    return Linger(client);
  }

  bool Linger(Client& client) {
    char buffer[4096];
    for (size_t dropped = 0; dropped < kDiscardPerTurn;) {
      ssize_t n = ::recv(client.fd.get(), buffer, sizeof(buffer), 0);
      if (n == 0) return false;  // the client's EOF: done
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      dropped += static_cast<size_t>(n);
    }
    return true;
  }

  HttpResponse Route(const HttpRequest& request) {
    if (request.path != "/metrics" && request.path != "/healthz") return Text(404, "not found\n");
    if (request.method != "GET" && request.method != "HEAD") {
      HttpResponse response = Text(405, "method not allowed\n");
      response.headers.emplace_back("Allow", "GET, HEAD");
      return response;
    }
    MetricsSnapshot snapshot = options_.metrics();
    if (request.path == "/healthz") {
      return snapshot.draining ? Text(503, "draining\n") : Text(200, "ok\n");
    }
    HttpResponse response = Text(200, PrometheusText(snapshot, start_time_));
    response.content_type = kPrometheusContentType;
    return response;
  }

  UniqueFd listener_;
  const AdminServerOptions options_;
  const double start_time_;  // Unix seconds
  std::vector<Client> clients_;
  TimePoint accept_paused_until_{};
};

Result<std::unique_ptr<AdminServer>> AdminServer::Start(AdminServerOptions options) {
  ZR_CHECK(options.metrics, "AdminServer needs a metrics source");
  ZR_CHECK(options.max_connections > 0 && options.max_head_bytes > 0);
  Result<UniqueFd> listener = ListenOn(options.address, {.backlog = 64, .reuse_port = false});
  if (!listener) return listener.error();
  Result<Address> bound = LocalAddress(listener->get());
  if (!bound) return bound.error();
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return Error::FromErrno(errno, "admin: eventfd");
  std::unique_ptr<AdminServer> server(
      new AdminServer(bound.value(), std::move(wake),
                      std::make_unique<Loop>(std::move(listener.value()), std::move(options))));
  server->thread_ =
      std::thread([loop = server->loop_.get(), wake = server->wake_.get()] { loop->Run(wake); });
  return server;
}

AdminServer::AdminServer(Address address, UniqueFd wake, std::unique_ptr<Loop> loop)
    : address_(std::move(address)), wake_(std::move(wake)), loop_(std::move(loop)) {}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::Stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  // An eventfd write fails only on a counter overflow, which one write per
  // Stop() never reaches; the join below would wait forever without it.
  ZR_CHECK(::write(wake_.get(), &one, sizeof(one)) == sizeof(one), "admin: eventfd write: %s",
           std::strerror(errno));
  thread_.join();
}

}  // namespace zrelay
