#include "tests/tools/admin_http_client.h"

#include <poll.h>
#include <sys/socket.h>

#include <cctype>
#include <cerrno>

#include "engine/unique_fd.h"
#include "tests/support/loop_test_util.h"

namespace zrelay::testing {

Result<std::string> ReadToEof(int fd, Duration deadline) {
  std::string received;
  const TimePoint until = Clock::now() + deadline;
  char buffer[16 << 10];
  for (;;) {
    const TimePoint now = Clock::now();
    if (now >= until) {
      return Error::FromErrno(ETIMEDOUT,
                              "no EOF after " + std::to_string(received.size()) + " bytes");
    }
    pollfd p{fd, POLLIN, 0};
    const auto left = std::chrono::ceil<milliseconds>(until - now).count();
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n == 0) return received;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      if (errno == ECONNRESET && !received.empty()) return received;
      return Error::FromErrno(errno, "recv after " + std::to_string(received.size()) + " bytes");
    }
    received.append(buffer, static_cast<size_t>(n));
  }
}

Result<HttpReply> ParseReply(const std::string& raw) {
  const size_t head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos || raw.size() < 12) {
    return Error::Invalid("not an HTTP/1.1 answer: '" + raw.substr(0, 200) + "'");
  }
  HttpReply reply;
  reply.status = std::stoi(raw.substr(9, 3));
  size_t at = raw.find("\r\n") + 2;
  while (at < head_end + 2) {
    const size_t end = raw.find("\r\n", at);
    const std::string line = raw.substr(at, end - at);
    const size_t colon = line.find(':');
    if (colon == std::string::npos) return Error::Invalid("bad header line '" + line + "'");
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    reply.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    at = end + 2;
  }
  reply.body = raw.substr(head_end + 4);
  return reply;
}

Result<HttpReply> HttpExchange(const Address& address, const std::string& request,
                               Duration deadline) {
  Result<UniqueFd> fd = BlockingConnect(address);
  if (!fd) return fd.error();
  if (!WriteAll(fd->get(), request, deadline)) {
    return Error::Invalid("sending the request to " + address.ToString() + " failed");
  }
  Result<std::string> raw = ReadToEof(fd->get(), deadline);
  if (!raw) return raw.error();
  return ParseReply(raw.value());
}

Result<HttpReply> HttpGet(const Address& address, const std::string& path) {
  return HttpExchange(address, "GET " + path + " HTTP/1.1\r\nHost: admin\r\n\r\n");
}

}  // namespace zrelay::testing
