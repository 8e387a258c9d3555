#include "tests/tools/log_test_util.h"

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace zrelay::testing {
namespace {

// '0' stands for any digit.
constexpr char kStampShape[] = "0000-00-00T00:00:00.000Z ";
constexpr size_t kStampSize = sizeof(kStampShape) - 1;

}  // namespace

std::string LogTestDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/" + name + ".XXXXXX";
  return ::mkdtemp(dir.data()) != nullptr ? dir : "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool Stamped(const std::string& line) {
  if (line.size() < kStampSize) return false;
  for (size_t i = 0; i < kStampSize; ++i) {
    const bool digit = line[i] >= '0' && line[i] <= '9';
    if (kStampShape[i] == '0' ? !digit : line[i] != kStampShape[i]) return false;
  }
  return true;
}

std::string Unstamped(const std::string& line) {
  return Stamped(line) ? line.substr(kStampSize) : "";
}

}  // namespace zrelay::testing
