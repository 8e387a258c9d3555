#include "tools/load/config.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tools/cli/flag_set.h"
#include "tools/cli/values.h"

namespace zrelay::load {
namespace {

constexpr unsigned Bit(Mode m) { return 1u << static_cast<unsigned>(m); }
constexpr unsigned kBulk = Bit(Mode::kBulk);
constexpr unsigned kRr = Bit(Mode::kRr);
constexpr unsigned kConnect = Bit(Mode::kConnect);
constexpr unsigned kIdle = Bit(Mode::kIdle);
constexpr unsigned kBackend = Bit(Mode::kBackend);
constexpr unsigned kUdp = Bit(Mode::kUdp);
constexpr unsigned kClients = kBulk | kRr | kConnect | kIdle;  // the TCP (and TLS) clients
constexpr unsigned kAll = kClients | kBackend | kUdp;
constexpr Mode kModes[] = {Mode::kBulk, Mode::kRr,      Mode::kConnect,
                           Mode::kIdle, Mode::kBackend, Mode::kUdp};

// Stores a flag's value or says what is wrong with it; FlagSet puts the
// flag's name in front.
using Setter = std::function<Status(Config&, const std::string&)>;

struct Flag {
  const char* name;
  unsigned modes;    // the modes that take it; any other mode refuses it
  const char* type;  // the value's name in CLI11's messages ("--conns: 1 required N missing")
  // A flag with a value, or a boolean: bare ("--json") or with a value ("--json=no").
  std::variant<Setter, bool Config::*> target;
};

Setter SizeInto(uint64_t Config::*field, uint64_t min, uint64_t max) {
  return [=](Config& c, const std::string& v) -> Status {
    auto size = ParseSize(v);
    if (!size.ok()) return size.error();
    if (*size < min || *size > max) {
      return Error::Invalid("'" + v + "' is out of range [" +
                            FormatBytes(static_cast<double>(min)) + ", " +
                            FormatBytes(static_cast<double>(max)) + "]");
    }
    c.*field = *size;
    return Status::Ok();
  };
}

// `T`: a whole number, or an optional one (a count that also says "given").
template <typename T>
Setter CountInto(T Config::*field, uint64_t min, uint64_t max) {
  return [=](Config& c, const std::string& v) -> Status {
    auto n = ParseCount(v, min, max);
    if (!n.ok()) return n.error();
    c.*field = static_cast<T>(*n);
    return Status::Ok();
  };
}

Setter DurationInto(Duration Config::*field) {
  return [=](Config& c, const std::string& v) -> Status {
    auto d = ParseDuration(v);
    if (!d.ok()) return d.error();
    if (*d > kMaxDuration) return Error::Invalid("at most 24 h");
    c.*field = *d;
    return Status::Ok();
  };
}

Setter AddressInto(Address Config::*field) {
  return [=](Config& c, const std::string& v) -> Status {
    auto a = Address::Parse(v);
    if (!a.ok()) return a.error();
    c.*field = *a;
    return Status::Ok();
  };
}

Setter NameInto(std::string Config::*field, const char* what) {
  return [=](Config& c, const std::string& v) -> Status {
    if (v.empty()) return Error::Invalid(std::string("empty ") + what);
    c.*field = v;
    return Status::Ok();
  };
}

const std::vector<Flag>& Flags() {
  static const std::vector<Flag> flags = {
      {"--target", kClients | kUdp, "ADDR",
       [](Config& c, const std::string& v) -> Status {
         if (Status s = AddressInto(&Config::target)(c, v); !s.ok()) return s;
         c.target_host = HostOf(v);
         return Status::Ok();
       }},
      {"--listen", kBackend, "ADDR", AddressInto(&Config::listen)},
      {"--mode", kBackend, "MODE",
       [](Config& c, const std::string& v) -> Status {
         for (BackendMode m : {BackendMode::kSink, BackendMode::kVerify, BackendMode::kEcho,
                               BackendMode::kFixed, BackendMode::kSource}) {
           if (v == BackendModeName(m)) {
             c.backend_mode = m;
             return Status::Ok();
           }
         }
         return Error::Invalid("'" + v + "' is not one of sink, verify, echo, fixed, source");
       }},
      {"--workers", kAll, "N", CountInto(&Config::workers, 1, kMaxWorkers)},
      {"--streams", kBulk, "N", CountInto(&Config::streams, 1, kMaxConns)},
      {"--bytes", kBulk, "SIZE",
       [](Config& c, const std::string& v) -> Status {
         auto size = ParseSize(v);
         if (!size.ok()) return size.error();
         if (*size == 0) return Error::Invalid("must be greater than 0");
         c.bytes = *size;
         return Status::Ok();
       }},
      {"--chunk", kBulk, "SIZE", SizeInto(&Config::chunk, 1, kMaxChunk)},
      {"--verify", kBulk, "", &Config::verify},
      {"--direction", kBulk, "DIR",
       [](Config& c, const std::string& v) -> Status {
         for (Direction d : {Direction::kUp, Direction::kDown, Direction::kBoth}) {
           if (v == DirectionName(d)) {
             c.direction = d;
             return Status::Ok();
           }
         }
         return Error::Invalid("'" + v + "' is not one of up, down, both");
       }},
      {"--conns", kRr | kConnect, "N", CountInto(&Config::conns, 1, kMaxConns)},
      {"--req", kRr | kConnect | kIdle | kBackend, "SIZE", SizeInto(&Config::req, 0, kMaxMessage)},
      {"--resp", kRr | kConnect | kIdle | kBackend, "SIZE",
       SizeInto(&Config::resp, 0, kMaxMessage)},
      {"--requests", kRr | kUdp, "N", CountInto(&Config::requests, 1, uint64_t{1} << 40)},
      {"--flows", kUdp, "N", CountInto(&Config::flows, 1, kMaxConns)},
      {"--size", kUdp, "SIZE", SizeInto(&Config::size, 1, kMaxUdpSize)},
      {"--reply-timeout", kUdp, "S", DurationInto(&Config::reply_timeout)},
      {"--udp", kBackend, "", &Config::udp},
      {"--count", kConnect, "N", CountInto(&Config::count, 1, uint64_t{1} << 40)},
      {"--pairs", kIdle, "N", CountInto(&Config::pairs, 1, kMaxConns)},
      {"--hold", kIdle, "S", DurationInto(&Config::hold)},
      {"--relay-pid", kIdle, "PID", CountInto(&Config::relay_pid, 1, 1u << 22)},
      {"--duration", kAll, "S",
       [](Config& c, const std::string& v) -> Status {
         Status s = DurationInto(&Config::duration)(c, v);
         if (s.ok()) c.duration_set = true;
         return s;
       }},
      {"--timeout", kClients | kUdp, "S", DurationInto(&Config::cap)},
      {"--connect-timeout", kClients, "S", DurationInto(&Config::connect_timeout)},
      {"--io-timeout", kClients, "S", DurationInto(&Config::io_timeout)},
      {"--tls", kClients, "", &Config::tls},
      {"--tls-ca", kClients, "FILE", NameInto(&Config::tls_ca, "file name")},
      {"--tls-insecure", kClients, "", &Config::tls_insecure},
      {"--sni", kClients, "NAME", NameInto(&Config::sni, "name")},
      {"--json", kAll, "", &Config::json},
      {"--quiet", kAll, "", &Config::quiet},
  };
  return flags;
}

// Cross-flag rules and mode defaults, once every flag is in.
Status Finish(Config& c, const std::set<std::string>& seen) {
  auto has = [&](const char* f) { return seen.count(f) > 0; };
  const char* mode = ModeName(c.mode);
  if (c.mode == Mode::kBackend) {
    if (!has("listen")) return Error::Invalid("backend: --listen ADDR is required");
    if (!has("duration")) c.duration = kDefaultBackendDuration;
    if (c.backend_mode == BackendMode::kFixed && c.req == 0) {
      return Error::Invalid("--req: mode fixed needs --req of at least 1 byte");
    }
    if ((has("req") || has("resp")) && c.backend_mode != BackendMode::kFixed) {
      return Error::Invalid(std::string("--") + (has("req") ? "req" : "resp") +
                            ": only used by --mode fixed");
    }
    if (c.udp && c.backend_mode != BackendMode::kEcho) {
      return Error::Invalid("--udp: the UDP backend only echoes (--mode echo)");
    }
    if (c.udp && c.listen.is_unix()) {
      return Error::Invalid("--listen: --udp needs an IP address, not a unix socket");
    }
  } else {
    if (!has("target")) return Error::Invalid(std::string(mode) + ": --target ADDR is required");
    if (c.mode == Mode::kUdp && c.target.is_unix()) {
      return Error::Invalid("--target: udp needs an IP address, not a unix socket");
    }
  }
  if (c.workers == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    c.workers = static_cast<int>(cpus < 1 ? 1 : (cpus > kMaxWorkers ? kMaxWorkers : cpus));
  }
  const char* counter = c.bytes ? "bytes" : c.requests ? "requests" : c.count ? "count" : nullptr;
  if (counter && has("duration")) {
    return Error::Invalid(std::string("--duration and --") + counter +
                          " exclude each other: a run ends on time or on volume");
  }
  if (c.mode == Mode::kBulk && c.bytes && *c.bytes < c.streams * 64) {
    return Error::Invalid("--bytes: at least 64 bytes per stream (" +
                          std::to_string(c.streams * 64) + " for " + std::to_string(c.streams) +
                          " streams)");
  }
  if (c.mode == Mode::kRr && (c.req == 0 || c.resp == 0)) {
    return Error::Invalid(std::string("--") + (c.req == 0 ? "req" : "resp") +
                          ": rr needs at least 1 byte each way");
  }
  if (c.mode == Mode::kIdle) {
    if (!has("pairs")) return Error::Invalid("idle: --pairs N is required");
    if (!has("req")) c.req = 1;
    if (!has("resp")) c.resp = 1;
  }
  if (c.mode != Mode::kBackend) {
    if (c.cap == Duration{}) {
      Duration base = c.mode == Mode::kIdle ? c.hold + seconds(60)
                      : c.counted()         ? kDefaultCountedCap
                                            : c.duration + seconds(15);
      c.cap = base;
    }
    if (c.cap > kMaxDuration) c.cap = kMaxDuration;
  }
  if (!c.tls) {
    for (const char* f : {"tls-ca", "sni"}) {
      if (has(f)) return Error::Invalid(std::string("--") + f + ": needs --tls");
    }
    if (c.tls_insecure) return Error::Invalid("--tls-insecure: needs --tls");
  } else if (has("tls-ca") && c.tls_insecure) {
    return Error::Invalid("--tls-ca and --tls-insecure exclude each other");
  }
  return Status::Ok();
}

}  // namespace

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kBulk:
      return "bulk";
    case Mode::kRr:
      return "rr";
    case Mode::kConnect:
      return "connect";
    case Mode::kIdle:
      return "idle";
    case Mode::kBackend:
      return "backend";
    case Mode::kUdp:
      return "udp";
  }
  return "?";
}

const char* DirectionName(Direction direction) {
  switch (direction) {
    case Direction::kUp:
      return "up";
    case Direction::kDown:
      return "down";
    case Direction::kBoth:
      return "both";
  }
  return "?";
}

const char* BackendModeName(BackendMode mode) {
  switch (mode) {
    case BackendMode::kSink:
      return "sink";
    case BackendMode::kVerify:
      return "verify";
    case BackendMode::kEcho:
      return "echo";
    case BackendMode::kFixed:
      return "fixed";
    case BackendMode::kSource:
      return "source";
  }
  return "?";
}

Result<Config> ParseArgs(int argc, const char* const* argv) {
  Config c;
  if (argc < 2) return Error::Invalid("missing mode: bulk, rr, connect, idle, udp or backend");
  // --help anywhere wins over everything else on the line, even bad flags.
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h" || (i == 1 && arg == "help")) {
      c.help = true;
      return c;
    }
  }
  const std::string first = argv[1];
  const Mode* mode = std::find_if(std::begin(kModes), std::end(kModes),
                                  [&](Mode m) { return first == ModeName(m); });
  if (mode == std::end(kModes)) {
    return Error::Invalid("unknown mode '" + first +
                          "': use bulk, rr, connect, idle, udp or backend");
  }
  c.mode = *mode;

  // Only the mode's own flags go into the app; another mode's flag is then
  // unknown to CLI11, and named as such below.
  CLI::App app;
  app.set_help_flag();  // --help was found above
  FlagSet flags(app, FlagSet::Repeats::kRefused);
  for (const Flag& flag : Flags()) {
    if ((flag.modes & Bit(c.mode)) == 0) continue;
    if (const auto* field = std::get_if<bool Config::*>(&flag.target)) {
      flags.Bool(flag.name, &(c.*(*field)), "");
    } else {
      flags.Value(
          flag.name, flag.type, "",
          [&c, set = std::get<Setter>(flag.target)](const std::string& v) { return set(c, v); });
    }
  }
  auto other_mode = [&c](const std::string& name) -> std::string {
    for (const Flag& flag : Flags()) {
      if (name == flag.name) return name + ": not a flag of '" + ModeName(c.mode) + "' mode";
    }
    return "";
  };
  if (Status s = flags.Parse(std::vector<std::string>(argv + 2, argv + argc), other_mode);
      !s.ok()) {
    return s.error();
  }
  std::set<std::string> seen;
  for (const CLI::Option* option : app.parse_order()) seen.insert(option->get_name().substr(2));
  if (Status s = Finish(c, seen); !s.ok()) return s.error();
  return c;
}

}  // namespace zrelay::load
