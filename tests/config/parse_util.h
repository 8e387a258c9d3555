// ParseConfig in a test: the file is "zrelayd.toml" in every message, and
// ErrorOf gives the one-line error, or "(parsed)".
#pragma once

#include <string>
#include <string_view>

#include "tools/config/config.h"

namespace zrelay::testing {

inline Result<FileConfig> Parse(std::string_view text) { return ParseConfig(text, "zrelayd.toml"); }

inline std::string ErrorOf(std::string_view text) {
  Result<FileConfig> config = Parse(text);
  return config.ok() ? "(parsed)" : config.error().message();
}

}  // namespace zrelay::testing
