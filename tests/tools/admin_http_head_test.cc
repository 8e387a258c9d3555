// tools/admin/http_head: request heads as they arrive, byte by byte, and
// the answers' wire form.
#include <gtest/gtest.h>

#include <string>

#include "tools/admin/http_head.h"

namespace zrelay {
namespace {

TEST(HttpHeadTest, EveryPrefixOfAGoodHeadIsIncomplete) {
  const std::string head = "GET /metrics?x=1 HTTP/1.1\r\nHost: admin\r\nAccept: */*\r\n\r\n";
  for (size_t n = 0; n < head.size(); ++n) {
    EXPECT_EQ(ParseRequestHead(head.substr(0, n), 8192).status, HeadStatus::kIncomplete)
        << "after " << n << " bytes";
  }
  ParsedHead parsed = ParseRequestHead(head + "trailing body bytes", 8192);
  ASSERT_EQ(parsed.status, HeadStatus::kComplete);
  EXPECT_EQ(parsed.request.method, "GET");
  EXPECT_EQ(parsed.request.path, "/metrics");
}

TEST(HttpHeadTest, ABadFirstLineIsBadBeforeTheHeadEnds) {
  EXPECT_EQ(ParseRequestHead(std::string("\x16\x03\x01", 3), 8192).status, HeadStatus::kBad);
  EXPECT_EQ(ParseRequestHead("GET /metrics\n", 8192).status, HeadStatus::kBad);
  EXPECT_EQ(ParseRequestHead(" GET", 8192).status, HeadStatus::kBad);
  EXPECT_EQ(ParseRequestHead("GET /metrics HTTP/9.9\r\nHost:", 8192).status, HeadStatus::kBad);
  EXPECT_EQ(ParseRequestHead("GET metrics HTTP/1.1\r\n", 8192).status, HeadStatus::kBad);
}

TEST(HttpHeadTest, TheLimitCountsTheWholeHead) {
  const std::string head = "GET / HTTP/1.0\r\n\r\n";  // 18 bytes
  EXPECT_EQ(ParseRequestHead(head, head.size()).status, HeadStatus::kComplete);
  EXPECT_EQ(ParseRequestHead(head, head.size() - 1).status, HeadStatus::kTooLarge);
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.0\r\nX: aaaa", 20).status, HeadStatus::kTooLarge);
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.0\r\nX: aaa", 24).status, HeadStatus::kIncomplete);
}

TEST(HttpHeadTest, ResponsesCloseAndHeadOmitsTheBody) {
  HttpResponse response;
  response.status = 405;
  response.body = "method not allowed\n";
  response.headers.emplace_back("Allow", "GET, HEAD");
  EXPECT_EQ(FormatResponse(response, false),
            "HTTP/1.1 405 Method Not Allowed\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 19\r\n"
            "Connection: close\r\n"
            "Allow: GET, HEAD\r\n"
            "\r\n"
            "method not allowed\n");
  EXPECT_TRUE(FormatResponse(response, true).ends_with("Allow: GET, HEAD\r\n\r\n"));
}

}  // namespace
}  // namespace zrelay
