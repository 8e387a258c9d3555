#include "relay/client_preamble.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include "ssl/client_hello.h"

namespace zrelay {
namespace {

// A ClientHello of kMaxClientHello bytes may come split over several TLS
// records, each with its own 5-byte header: twice the limit leaves room for
// any sane split and still bounds what one peek copies.
constexpr size_t kClientHelloPeekCap = 2 * kMaxClientHello;
static_assert(kClientHelloPeekCap >= kMaxProxyHeader);

// One per worker thread: a peek copies into it and the parse is done
// before the next peek, so the pairs of a worker share it.
thread_local char peek_buffer[kClientHelloPeekCap];

bool IsReset(int err) { return err == ECONNRESET || err == EPIPE || err == ECONNABORTED; }

}  // namespace

ClientPreamble::ClientPreamble(const PreambleOptions& options)
    : stage_(options.proxy_protocol      ? Stage::kProxyHeader
             : options.peek_client_hello ? Stage::kClientHello
                                         : Stage::kDone),
      peek_client_hello_(options.peek_client_hello) {}

const char* ClientPreamble::waiting_for() const {
  return stage_ == Stage::kProxyHeader ? "PROXY header" : "TLS ClientHello";
}

ClientPreamble::Progress ClientPreamble::Advance(FdWatch& watch) {
  if (stage_ == Stage::kProxyHeader) {
    Progress p = ReadProxyHeader(watch);
    if (p != Progress::kDone) return p;
    stage_ = peek_client_hello_ ? Stage::kClientHello : Stage::kDone;
  }
  // The ClientHello may have come with the header: peek at once.
  if (stage_ == Stage::kClientHello) {
    Progress p = PeekClientHello(watch);
    if (p != Progress::kDone) return p;
    stage_ = Stage::kDone;
  }
  return Progress::kDone;
}

ClientPreamble::Progress ClientPreamble::ReadProxyHeader(FdWatch& watch) {
  // No more than the largest header: what follows is the client's stream.
  const Peeked peeked = Peek(watch, kMaxProxyHeader);
  if (peeked.progress != Progress::kDone) return peeked.progress;
  const ProxyParse parse = ParseProxyHeader(std::string_view(peek_buffer, peeked.bytes));
  switch (parse.status) {
    case ProxyParseStatus::kNeedMore:
      return NeedMore(watch, peeked.bytes, parse.needed, kMaxProxyHeader);
    case ProxyParseStatus::kInvalid:
      return Fail(CloseCause::kError, EPROTO, "bad PROXY header: " + parse.error);
    case ProxyParseStatus::kOk:
      break;
  }
  // Consume exactly the header; its bytes are queued (we just peeked them).
  ssize_t n;
  do {
    n = ::recv(watch.fd(), peek_buffer, parse.length, 0);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(parse.length)) {
    const int err = n < 0 ? errno : EIO;
    return Fail(IsReset(err) ? CloseCause::kReset : CloseCause::kError, err,
                "reading the PROXY header: " + std::string(std::strerror(err)));
  }
  proxy_header_ = parse.header;
  return Progress::kDone;
}

ClientPreamble::Progress ClientPreamble::PeekClientHello(FdWatch& watch) {
  const Peeked peeked = Peek(watch, kClientHelloPeekCap);
  if (peeked.progress != Progress::kDone) return peeked.progress;
  const ClientHelloPeek peek = ParseClientHello(std::string_view(peek_buffer, peeked.bytes));
  switch (peek.status) {
    case PeekStatus::kNeedMore:
      return NeedMore(watch, peeked.bytes, peek.needed, kClientHelloPeekCap);
    case PeekStatus::kNotTls:
      return Fail(CloseCause::kError, EPROTO, "not TLS: " + peek.error);
    case PeekStatus::kOk:
      break;
  }
  server_name_ = peek.hello.sni;
  return Progress::kDone;
}

ClientPreamble::Peeked ClientPreamble::Peek(FdWatch& watch, size_t cap) {
  ssize_t n;
  do {
    n = ::recv(watch.fd(), peek_buffer, cap, MSG_PEEK);
  } while (n < 0 && errno == EINTR);
  if (n > 0) return {Progress::kDone, static_cast<size_t>(n)};
  if (n == 0) {
    return {Fail(CloseCause::kError, 0,
                 std::string("client closed before its ") + waiting_for() + " was complete"),
            0};
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    watch.clear_readable();
    return {Progress::kWaiting, 0};
  }
  const int err = errno;
  return {Fail(IsReset(err) ? CloseCause::kReset : CloseCause::kError, err,
               std::string("reading the ") + waiting_for() + ": " + std::strerror(err)),
          0};
}

ClientPreamble::Progress ClientPreamble::NeedMore(FdWatch& watch, size_t have, size_t needed,
                                                  size_t cap) {
  if (needed > cap) {
    return Fail(CloseCause::kError, EPROTO,
                std::string(waiting_for()) + " longer than " + std::to_string(cap) + " bytes");
  }
  if (watch.read_hup()) {
    return Fail(CloseCause::kError, 0,
                std::string("client closed within its ") + waiting_for() + " (" +
                    std::to_string(have) + " bytes)");
  }
  // The peek saw every byte queued: only new bytes bring the next edge.
  watch.clear_readable();
  return Progress::kWaiting;
}

ClientPreamble::Progress ClientPreamble::Fail(CloseCause cause, int err, std::string detail) {
  failure_ = Failure{cause, err, std::move(detail)};
  return Progress::kFailed;
}

}  // namespace zrelay
