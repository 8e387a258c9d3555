#include "tools/admin/http_head.h"

#include <cctype>
#include <optional>

namespace zrelay {
namespace {

constexpr std::string_view kCrlf = "\r\n";

// RFC 9110 token characters (methods, header names).
bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Visible ASCII: what a request target is made of.
bool IsVisible(char c) { return c > 0x20 && c < 0x7f; }

// A header value's characters: visible, space, tab, and obs-text (>= 0x80).
bool IsFieldChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

// Whether `line`, a first line cut short (no CRLF yet), can still grow into
// a request line: a token, then a space and visible characters or spaces.
bool CanStartRequestLine(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // its LF is on its way
  size_t i = 0;
  while (i < line.size() && IsTokenChar(line[i])) ++i;
  if (i == line.size()) return true;
  if (i == 0 || line[i] != ' ') return false;
  for (++i; i < line.size(); ++i) {
    if (!IsVisible(line[i]) && line[i] != ' ') return false;
  }
  return true;
}

// The path of a request target: origin form ("/metrics?x=1") or absolute
// form ("http://host:9901/metrics", which servers must accept too).
std::optional<std::string> TargetPath(std::string_view target) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.substr(0, scheme.size()) == scheme) {
      target.remove_prefix(scheme.size());
      size_t slash = target.find('/');
      target = slash == std::string_view::npos ? "/" : target.substr(slash);
    }
  }
  if (target.empty() || (target[0] != '/' && target != "*")) return std::nullopt;
  return std::string(target.substr(0, target.find_first_of("?#")));
}

// "GET /metrics HTTP/1.1": method, target and version, one space apart.
std::optional<HttpRequest> ParseRequestLine(std::string_view line) {
  const size_t first = line.find(' ');
  const size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  std::string_view method = line.substr(0, first);
  std::string_view target = line.substr(first + 1, second - first - 1);
  std::string_view version = line.substr(second + 1);
  if (method.empty() || target.empty()) return std::nullopt;
  for (char c : method) {
    if (!IsTokenChar(c)) return std::nullopt;
  }
  for (char c : target) {
    if (!IsVisible(c)) return std::nullopt;
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return std::nullopt;
  std::optional<std::string> path = TargetPath(target);
  if (!path) return std::nullopt;
  return HttpRequest{std::string(method), std::move(*path)};
}

// "Name: value": a token, a colon, field characters. A line that starts
// with white space (obsolete folding) has no token and is refused.
bool IsHeaderLine(std::string_view line) {
  size_t colon = line.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  for (char c : line.substr(0, colon)) {
    if (!IsTokenChar(c)) return false;
  }
  for (char c : line.substr(colon + 1)) {
    if (!IsFieldChar(c)) return false;
  }
  return true;
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
  }
  return "Unknown";
}

}  // namespace

ParsedHead ParseRequestHead(std::string_view received, size_t max_head_bytes) {
  const size_t end = received.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    // The limit counts the blank line: a head that fits would have shown
    // its end among the first max_head_bytes bytes.
    if (received.size() >= max_head_bytes) return {HeadStatus::kTooLarge, {}};
    const size_t first_end = received.find(kCrlf);
    const bool first_line_ok = first_end == std::string_view::npos
                                   ? CanStartRequestLine(received)
                                   : ParseRequestLine(received.substr(0, first_end)).has_value();
    return {first_line_ok ? HeadStatus::kIncomplete : HeadStatus::kBad, {}};
  }
  if (end + 2 * kCrlf.size() > max_head_bytes) return {HeadStatus::kTooLarge, {}};

  std::string_view head = received.substr(0, end + kCrlf.size());  // each line with its CRLF
  const size_t first_end = head.find(kCrlf);
  std::optional<HttpRequest> request = ParseRequestLine(head.substr(0, first_end));
  if (!request) return {HeadStatus::kBad, {}};
  for (size_t at = first_end + kCrlf.size(); at < head.size();) {
    const size_t line_end = head.find(kCrlf, at);
    if (!IsHeaderLine(head.substr(at, line_end - at))) return {HeadStatus::kBad, {}};
    at = line_end + kCrlf.size();
  }
  return {HeadStatus::kComplete, std::move(*request)};
}

std::string FormatResponse(const HttpResponse& response, bool head_only) {
  std::string text =
      "HTTP/1.1 " + std::to_string(response.status) + " " + ReasonPhrase(response.status) + "\r\n";
  text += "Content-Type: " + response.content_type + "\r\n";
  text += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  text += "Connection: close\r\n";
  for (const auto& [name, value] : response.headers) text += name + ": " + value + "\r\n";
  text += "\r\n";
  if (!head_only) text += response.body;
  return text;
}

}  // namespace zrelay
