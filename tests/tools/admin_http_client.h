// A blocking HTTP/1.x client for tests of zrelayd's admin endpoint: sends a
// request's bytes as given (well-formed or not), then reads the answer
// until the server closes. Every wait has a deadline.
#pragma once

#include <map>
#include <string>

#include "engine/address.h"
#include "engine/clock.h"
#include "engine/result.h"

namespace zrelay::testing {

struct HttpReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
};

// Reads `fd` until EOF (or a reset after some bytes), at most `deadline`.
Result<std::string> ReadToEof(int fd, Duration deadline = seconds(10));

// Splits a whole answer into status, headers and body.
Result<HttpReply> ParseReply(const std::string& raw);

// Connects to `address`, sends `request`, reads and parses the answer.
Result<HttpReply> HttpExchange(const Address& address, const std::string& request,
                               Duration deadline = seconds(10));

// HttpExchange of "GET <path> HTTP/1.1" with a Host header.
Result<HttpReply> HttpGet(const Address& address, const std::string& path);

}  // namespace zrelay::testing
