// Fuzzes ParseConfig, which reads zrelayd's configuration file (TOML). It
// opens and resolves nothing, so any text can be parsed. Beyond not
// crashing:
//  - a refusal is one line that starts with the file name, as every error
//    of the file does;
//  - an accepted file holds what config.h promises: at least one listener,
//    each named (uniquely), listening somewhere, with at least one backend,
//    and every number within its documented range;
//  - parsing is deterministic: the same text gives the same verdict.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_check.h"
#include "tools/config/config.h"

namespace zrelay {
namespace {

constexpr std::string_view kFileName = "fuzz.toml";

void CheckBackend(const BackendConfig& backend) {
  FUZZ_CHECK(backend.literal.has_value() != !backend.host.empty());
  FUZZ_CHECK(backend.weight >= 1 && backend.weight <= kMaxBackendWeight);
  if (backend.literal.has_value() && backend.literal->is_unix()) {
    FUZZ_CHECK(backend.port == 0);
  } else {
    FUZZ_CHECK(backend.port >= 1 && backend.port <= 65535);
  }
}

void CheckListener(const ListenerConfig& listener) {
  FUZZ_CHECK(!listener.name.empty());
  FUZZ_CHECK(!listener.listen.empty());
  FUZZ_CHECK(!listener.backends.empty());
  FUZZ_CHECK(listener.max_connections <= 100000000);
  FUZZ_CHECK(listener.retries >= 0 && listener.retries <= 16);
  FUZZ_CHECK(listener.backlog >= 1 && listener.backlog <= 65535);
  FUZZ_CHECK(listener.idle_timeout.count() >= 0);
  FUZZ_CHECK(listener.connect_timeout.count() > 0);
  if (listener.health.has_value()) {
    const HealthConfig& health = *listener.health;
    FUZZ_CHECK(health.timeout < health.interval);
    FUZZ_CHECK(health.fall >= 1 && health.fall <= 100);
    FUZZ_CHECK(health.rise >= 1 && health.rise <= 100);
  }
  for (const BackendConfig& backend : listener.backends) CheckBackend(backend);
}

}  // namespace
}  // namespace zrelay

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zrelay;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const Result<FileConfig> config = ParseConfig(text, kFileName);
  const Result<FileConfig> again = ParseConfig(text, kFileName);
  FUZZ_CHECK(config.ok() == again.ok());
  if (!config.ok()) {
    const std::string& message = config.error().message();
    FUZZ_CHECK(message.find('\n') == std::string::npos);
    FUZZ_CHECK(message.find('\r') == std::string::npos);
    FUZZ_CHECK(message.rfind(std::string(kFileName) + ":", 0) == 0);
    FUZZ_CHECK(message == again.error().message());
    return 0;
  }
  FUZZ_CHECK(config->workers >= 0 && config->workers <= 1024);
  FUZZ_CHECK(config->pipe_pool <= 1048576);
  FUZZ_CHECK(config->pipe_size > 0 && config->buffer_size > 0 && config->budget > 0);
  FUZZ_CHECK(!config->listeners.empty());
  std::set<std::string> names;
  for (const ListenerConfig& listener : config->listeners) {
    CheckListener(listener);
    FUZZ_CHECK(names.insert(listener.name).second);
  }
  return 0;
}
