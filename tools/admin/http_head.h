// The little of HTTP/1.1 the admin endpoint speaks: a request's head
// parsed from the bytes received so far, and a whole response to send back
// before the connection closes (no keep-alive, no request bodies).
//
//   ParsedHead head = ParseRequestHead(received, 8 << 10);
//   if (head.status == HeadStatus::kIncomplete) { /* read more */ }
//
// The parser is strict where leniency would only hide a broken client:
// lines end in CRLF, the version is HTTP/1.0 or HTTP/1.1, header names are
// tokens, no obsolete line folding. A first line that cannot become a
// request line is bad as soon as it is seen, so a client sending binary
// (TLS to a plain port) gets its 400 at once instead of at the timeout.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zrelay {

struct HttpRequest {
  std::string method;  // "GET"
  std::string path;    // the target's path, without its query: "/metrics"
};

enum class HeadStatus {
  kIncomplete,  // no blank line yet, and nothing wrong so far
  kComplete,
  kBad,       // not an HTTP/1.x request head: answer 400
  kTooLarge,  // more than the limit before the blank line: answer 431
};

struct ParsedHead {
  HeadStatus status = HeadStatus::kIncomplete;
  HttpRequest request;  // set when kComplete
};

// Parses the head at the start of `received` (what a client sent so far).
// `max_head_bytes` bounds the head, request line and blank line included.
ParsedHead ParseRequestHead(std::string_view received, size_t max_head_bytes);

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond the standard ones
};

// Status line, Content-Type, Content-Length, Connection: close, the extra
// headers, then the body unless `head_only` (the answer to a HEAD).
std::string FormatResponse(const HttpResponse& response, bool head_only);

}  // namespace zrelay
