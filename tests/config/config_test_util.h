// What the config file tests share: the smallest file that parses, that
// file's listener with more keys, and a table of texts each with the one
// error message it must give.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "tests/config/parse_util.h"

namespace zrelay::testing {

// The smallest file that parses: one listener, one backend.
inline constexpr char kMinimal[] = R"(
[[listener]]
name = "web"
listen = "127.0.0.1:8080"

[[listener.backend]]
address = "10.0.0.1:9000"
)";

// kMinimal's listener with `lines` added to it (line 5 on).
inline std::string WithListenerKeys(std::string_view lines) {
  return "\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\n" + std::string(lines) +
         "\n[[listener.backend]]\naddress = \"10.0.0.1:9000\"\n";
}

// A file's text and the message ParseConfig must fail it with.
struct ErrorCase {
  std::string text;
  std::string message;
};

inline void ExpectErrors(const std::vector<ErrorCase>& cases) {
  for (const ErrorCase& c : cases) {
    EXPECT_EQ(ErrorOf(c.text), c.message) << "in:\n" << c.text;
  }
}

}  // namespace zrelay::testing
