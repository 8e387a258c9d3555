// Config: what one zrelay-load run does, parsed from its command line.
//
// The first argument is the mode; CLI11 (through tools/cli/flag_set.h) splits
// the flags after it, and a table in config.cc says which modes take each.
// ParseArgs never exits or prints: a usage error comes back as an Error whose
// message names the flag ("--chunk: bad size '64q': ..."), and main() turns it
// into exit status 2.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/address.h"
#include "engine/clock.h"
#include "engine/result.h"

namespace zrelay::load {

enum class Mode { kBulk, kRr, kConnect, kIdle, kBackend, kUdp };
enum class Direction { kUp, kDown, kBoth };
enum class BackendMode { kSink, kVerify, kEcho, kFixed, kSource };

const char* ModeName(Mode mode);
const char* DirectionName(Direction direction);
const char* BackendModeName(BackendMode mode);

// Hard limits, shared by the parser, the help text and the runner.
inline constexpr int kMaxWorkers = 64;
inline constexpr uint64_t kMaxConns = 19000;  // RLIMIT_NOFILE is 20000 here
inline constexpr uint64_t kMaxChunk = 16ULL << 20;
inline constexpr uint64_t kMaxMessage = 64ULL << 20;  // --req / --resp
inline constexpr uint64_t kMaxUdpSize = 65507;        // udp --size: IPv4's largest payload
inline constexpr Duration kDefaultReplyTimeout = seconds(1);
inline constexpr Duration kMaxDuration = std::chrono::hours(24);
inline constexpr Duration kDefaultDuration = seconds(10);
inline constexpr Duration kDefaultBackendDuration = seconds(600);
inline constexpr Duration kDefaultCountedCap = seconds(300);

struct Config {
  bool help = false;  // --help / -h: print HelpText() and exit 0
  Mode mode = Mode::kBulk;

  Address target;           // client modes
  std::string target_host;  // the host part of --target as given ("localhost", "::1")
  Address listen;           // backend
  BackendMode backend_mode = BackendMode::kEcho;
  bool udp = false;  // backend --udp: echo datagrams instead of serving TCP
  int workers = 0;   // 0 until parsed: one per online CPU

  // bulk
  uint64_t streams = 1;
  std::optional<uint64_t> bytes;  // total per direction across streams
  uint64_t chunk = 64 << 10;
  bool verify = false;
  Direction direction = Direction::kUp;

  // rr, connect, idle
  uint64_t conns = 10;
  uint64_t req = 128;
  uint64_t resp = 128;
  std::optional<uint64_t> requests;  // rr: total
  std::optional<uint64_t> count;     // connect: total attempts

  // udp: --flows sockets, each sends a --size datagram and waits for its
  // echo (or --reply-timeout: a loss) before the next; --requests counts too.
  uint64_t flows = 10;
  uint64_t size = 64;
  Duration reply_timeout = kDefaultReplyTimeout;

  // idle
  uint64_t pairs = 0;
  Duration hold = seconds(10);
  int relay_pid = 0;

  // Time. duration: how long a timed run lasts (backend: how long it serves).
  // cap: the hard limit on the whole run, whatever happens.
  Duration duration = kDefaultDuration;
  bool duration_set = false;
  Duration cap{};
  Duration connect_timeout = seconds(5);
  Duration io_timeout = seconds(10);

  // TLS client side
  bool tls = false;
  std::string tls_ca;
  bool tls_insecure = false;
  std::string sni;

  bool json = false;
  bool quiet = false;  // no progress lines

  // True when the run ends on a volume or a count rather than on time.
  bool counted() const { return bytes || requests || count; }
};

// Parses argv (argv[0] is the program name). Mode-specific defaults are
// applied and cross-flag rules checked.
Result<Config> ParseArgs(int argc, const char* const* argv);

std::string HelpText();

}  // namespace zrelay::load
