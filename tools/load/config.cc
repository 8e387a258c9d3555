#include "tools/load/config.h"

#include <unistd.h>

#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tools/cli/values.h"

namespace zrelay::load {
namespace {

constexpr unsigned Bit(Mode m) { return 1u << static_cast<unsigned>(m); }
constexpr unsigned kBulk = Bit(Mode::kBulk);
constexpr unsigned kRr = Bit(Mode::kRr);
constexpr unsigned kConnect = Bit(Mode::kConnect);
constexpr unsigned kIdle = Bit(Mode::kIdle);
constexpr unsigned kBackend = Bit(Mode::kBackend);
constexpr unsigned kClients = kBulk | kRr | kConnect | kIdle;
constexpr unsigned kAll = kClients | kBackend;

using Setter = std::function<Status(Config&, std::string_view)>;

struct Flag {
  const char* name;  // without the leading "--"
  unsigned modes;
  bool takes_value;  // false: a boolean, bare ("--json") or with a value ("--json=no")
  Setter set;
};

Status Fail(const std::string& flag, const Error& error) {
  return Error::Invalid("--" + flag + ": " + error.message());
}

Setter SizeInto(uint64_t Config::*field, const char* flag, uint64_t min, uint64_t max) {
  return [=](Config& c, std::string_view v) -> Status {
    auto size = ParseSize(v);
    if (!size.ok()) return Fail(flag, size.error());
    if (*size < min || *size > max) {
      return Error::Invalid(std::string("--") + flag + ": '" + std::string(v) +
                            "' is out of range [" + FormatBytes(static_cast<double>(min)) + ", " +
                            FormatBytes(static_cast<double>(max)) + "]");
    }
    c.*field = *size;
    return Status::Ok();
  };
}

Setter CountInto(uint64_t Config::*field, const char* flag, uint64_t min, uint64_t max) {
  return [=](Config& c, std::string_view v) -> Status {
    auto n = ParseCount(v, min, max);
    if (!n.ok()) return Fail(flag, n.error());
    c.*field = *n;
    return Status::Ok();
  };
}

Setter DurationInto(Duration Config::*field, const char* flag) {
  return [=](Config& c, std::string_view v) -> Status {
    auto d = ParseDuration(v);
    if (!d.ok()) return Fail(flag, d.error());
    if (*d > kMaxDuration) return Error::Invalid(std::string("--") + flag + ": at most 24 h");
    c.*field = *d;
    return Status::Ok();
  };
}

// A boolean flag: ParseArgs hands a bare "--flag" over as "true".
Setter BoolInto(bool Config::*field, const char* flag) {
  return [=](Config& c, std::string_view v) -> Status {
    auto b = ParseBool(v);
    if (!b.ok()) return Fail(flag, b.error());
    c.*field = *b;
    return Status::Ok();
  };
}

Setter AddressInto(Address Config::*field, const char* flag) {
  return [=](Config& c, std::string_view v) -> Status {
    auto a = Address::Parse(v);
    if (!a.ok()) return Fail(flag, a.error());
    c.*field = *a;
    return Status::Ok();
  };
}

const std::vector<Flag>& Flags() {
  static const std::vector<Flag> flags = {
      {"target", kClients, true,
       [](Config& c, std::string_view v) -> Status {
         if (Status s = AddressInto(&Config::target, "target")(c, v); !s.ok()) return s;
         c.target_host = HostOf(v);
         return Status::Ok();
       }},
      {"listen", kBackend, true, AddressInto(&Config::listen, "listen")},
      {"mode", kBackend, true,
       [](Config& c, std::string_view v) -> Status {
         if (v == "sink")
           c.backend_mode = BackendMode::kSink;
         else if (v == "verify")
           c.backend_mode = BackendMode::kVerify;
         else if (v == "echo")
           c.backend_mode = BackendMode::kEcho;
         else if (v == "fixed")
           c.backend_mode = BackendMode::kFixed;
         else if (v == "source")
           c.backend_mode = BackendMode::kSource;
         else
           return Error::Invalid("--mode: '" + std::string(v) +
                                 "' is not one of sink, verify, echo, fixed, source");
         return Status::Ok();
       }},
      {"workers", kAll, true,
       [](Config& c, std::string_view v) -> Status {
         auto n = ParseCount(v, 1, kMaxWorkers);
         if (!n.ok()) return Fail("workers", n.error());
         c.workers = static_cast<int>(*n);
         return Status::Ok();
       }},
      {"streams", kBulk, true, CountInto(&Config::streams, "streams", 1, kMaxConns)},
      {"bytes", kBulk, true,
       [](Config& c, std::string_view v) -> Status {
         auto size = ParseSize(v);
         if (!size.ok()) return Fail("bytes", size.error());
         if (*size == 0) return Error::Invalid("--bytes: must be greater than 0");
         c.bytes = *size;
         return Status::Ok();
       }},
      {"chunk", kBulk, true, SizeInto(&Config::chunk, "chunk", 1, kMaxChunk)},
      {"verify", kBulk, false, BoolInto(&Config::verify, "verify")},
      {"direction", kBulk, true,
       [](Config& c, std::string_view v) -> Status {
         if (v == "up")
           c.direction = Direction::kUp;
         else if (v == "down")
           c.direction = Direction::kDown;
         else if (v == "both")
           c.direction = Direction::kBoth;
         else
           return Error::Invalid("--direction: '" + std::string(v) +
                                 "' is not one of up, down, both");
         return Status::Ok();
       }},
      {"conns", kRr | kConnect, true, CountInto(&Config::conns, "conns", 1, kMaxConns)},
      {"req", kRr | kConnect | kIdle | kBackend, true,
       SizeInto(&Config::req, "req", 0, kMaxMessage)},
      {"resp", kRr | kConnect | kIdle | kBackend, true,
       SizeInto(&Config::resp, "resp", 0, kMaxMessage)},
      {"requests", kRr, true,
       [](Config& c, std::string_view v) -> Status {
         auto n = ParseCount(v, 1, uint64_t{1} << 40);
         if (!n.ok()) return Fail("requests", n.error());
         c.requests = *n;
         return Status::Ok();
       }},
      {"count", kConnect, true,
       [](Config& c, std::string_view v) -> Status {
         auto n = ParseCount(v, 1, uint64_t{1} << 40);
         if (!n.ok()) return Fail("count", n.error());
         c.count = *n;
         return Status::Ok();
       }},
      {"pairs", kIdle, true, CountInto(&Config::pairs, "pairs", 1, kMaxConns)},
      {"hold", kIdle, true, DurationInto(&Config::hold, "hold")},
      {"relay-pid", kIdle, true,
       [](Config& c, std::string_view v) -> Status {
         auto n = ParseCount(v, 1, 1u << 22);
         if (!n.ok()) return Fail("relay-pid", n.error());
         c.relay_pid = static_cast<int>(*n);
         return Status::Ok();
       }},
      {"duration", kAll, true,
       [](Config& c, std::string_view v) -> Status {
         auto s = DurationInto(&Config::duration, "duration")(c, v);
         if (s.ok()) c.duration_set = true;
         return s;
       }},
      {"timeout", kClients, true, DurationInto(&Config::cap, "timeout")},
      {"connect-timeout", kClients, true,
       DurationInto(&Config::connect_timeout, "connect-timeout")},
      {"io-timeout", kClients, true, DurationInto(&Config::io_timeout, "io-timeout")},
      {"tls", kClients, false, BoolInto(&Config::tls, "tls")},
      {"tls-ca", kClients, true,
       [](Config& c, std::string_view v) -> Status {
         if (v.empty()) return Error::Invalid("--tls-ca: empty file name");
         c.tls_ca = std::string(v);
         return Status::Ok();
       }},
      {"tls-insecure", kClients, false, BoolInto(&Config::tls_insecure, "tls-insecure")},
      {"sni", kClients, true,
       [](Config& c, std::string_view v) -> Status {
         if (v.empty()) return Error::Invalid("--sni: empty name");
         c.sni = std::string(v);
         return Status::Ok();
       }},
      {"json", kAll, false, BoolInto(&Config::json, "json")},
      {"quiet", kAll, false, BoolInto(&Config::quiet, "quiet")},
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
  } else {
    if (!has("target")) return Error::Invalid(std::string(mode) + ": --target ADDR is required");
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
  if (argc < 2) return Error::Invalid("missing mode: bulk, rr, connect, idle or backend");
  // --help anywhere wins over everything else on the line, even bad flags.
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h" || (i == 1 && arg == "help")) {
      c.help = true;
      return c;
    }
  }
  std::string_view first = argv[1];
  if (first == "bulk")
    c.mode = Mode::kBulk;
  else if (first == "rr")
    c.mode = Mode::kRr;
  else if (first == "connect")
    c.mode = Mode::kConnect;
  else if (first == "idle")
    c.mode = Mode::kIdle;
  else if (first == "backend")
    c.mode = Mode::kBackend;
  else
    return Error::Invalid("unknown mode '" + std::string(first) +
                          "': use bulk, rr, connect, idle or backend");

  std::set<std::string> seen;
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.size() < 3 || arg.substr(0, 2) != "--") {
      return Error::Invalid("unexpected argument '" + std::string(arg) + "' (flags start with --)");
    }
    std::string name(arg.substr(2));
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const Flag* flag = nullptr;
    for (const Flag& f : Flags()) {
      if (name == f.name) flag = &f;
    }
    if (flag == nullptr) return Error::Invalid("--" + name + ": unknown flag (see --help)");
    if ((flag->modes & Bit(c.mode)) == 0) {
      return Error::Invalid("--" + name + ": not a flag of '" + ModeName(c.mode) + "' mode");
    }
    if (!seen.insert(name).second) return Error::Invalid("--" + name + ": given twice");
    if (flag->takes_value && !value) {
      if (i + 1 >= argc) return Error::Invalid("--" + name + ": needs a value");
      value = argv[++i];
    }
    Status s = flag->set(c, value.value_or("true"));
    if (!s.ok()) return s.error();
  }
  Status s = Finish(c, seen);
  if (!s.ok()) return s.error();
  return c;
}

}  // namespace zrelay::load
