#include "tools/log/log.h"

#include <cstdarg>
#include <cstdio>
#include <memory>
#include <string>

#include "tools/log/log_sink.h"

namespace zrelay {
namespace {

// Never destroyed: a worker may still log while the process exits.
std::unique_ptr<LogSink>& OwnLog() {
  static auto* sink = new std::unique_ptr<LogSink>(LogSink::Stderr());
  return *sink;
}

}  // namespace

void Log(std::string_view line) { OwnLog()->Write(line); }

void Logf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  int size = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  std::string line(size > 0 ? static_cast<size_t>(size) : 0, '\0');
  if (size > 0) std::vsnprintf(line.data(), line.size() + 1, format, again);
  va_end(again);
  Log(line);
}

Status LogToFile(const std::string& path) {
  auto file = LogSink::OpenFile(path, "log file");
  if (!file.ok()) return file.error();
  OwnLog() = std::move(file.value());
  return Status::Ok();
}

Status ReopenLogFile() { return OwnLog()->Reopen(); }

}  // namespace zrelay
