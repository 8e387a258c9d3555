// Reading log files back in tests: their lines, and the text after a
// file line's timestamp.
#pragma once

#include <string>
#include <vector>

namespace zrelay::testing {

// A fresh directory under TEST_TMPDIR for one test's files.
std::string LogTestDir(const std::string& name);

// The file's whole text; "" when it cannot be read.
std::string ReadFile(const std::string& path);

// `text` split at newlines (without them).
std::vector<std::string> Lines(const std::string& text);

// True when `line` starts with "2026-12-01T03:04:05.123Z " (any digits).
bool Stamped(const std::string& line);

// The text after a file line's timestamp; "" when it has none.
std::string Unstamped(const std::string& line);

}  // namespace zrelay::testing
