#include "tests/tools/promtool_check.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace zrelay::testing {
namespace {

// The first executable `name` in $PATH; empty when there is none.
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

}  // namespace

Status PromtoolCheckMetrics(const std::string& exposition) {
  const std::string promtool = FindOnPath("promtool");
  if (promtool.empty()) {
    const char* path = std::getenv("PATH");
    return Error::Invalid(std::string("promtool not found on PATH (") + (path ? path : "") +
                          "): it comes with the Debian package prometheus; run "
                          "'bash tools/setup.sh'");
  }
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string file = std::string(tmp != nullptr ? tmp : "/tmp") + "/exposition-" +
                           std::to_string(::getpid()) + ".txt";
  std::ofstream(file, std::ios::binary) << exposition;
  const std::string command = promtool + " check metrics < '" + file + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return Error::FromErrno(errno, "popen " + command);
  std::string said;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) said.append(buffer, n);
  const int status = ::pclose(pipe);
  std::remove(file.c_str());
  // A clean exposition: exit 0 and not a word. A lint finding exits 3, a
  // parse error 1, both saying what.
  if (status != 0 || !said.empty()) {
    return Error::Invalid("promtool check metrics (exit " +
                          std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                          "): " + said);
  }
  return Status::Ok();
}

}  // namespace zrelay::testing
