#include "tools/load/report.h"

#include <cinttypes>
#include <cstdio>
#include <sstream>
#include <string>

#include "tools/cli/values.h"
#include "tools/load/session.h"

namespace zrelay::load {
namespace {

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string Num(double v, int decimals = 3) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

double Us(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

double PerSecond(uint64_t n, double seconds) { return seconds > 0 ? n / seconds : 0.0; }

bool HasLatency(Mode m) { return m == Mode::kRr || m == Mode::kConnect || m == Mode::kUdp; }

// udp: the requests that ended (answered or lost); those in flight when the
// time was up are not among them.
uint64_t UdpEnded(const Report& r) { return r.requests + r.lost; }

double LossRate(const Report& r) {
  const uint64_t ended = UdpEnded(r);
  return ended ? static_cast<double>(r.lost) / static_cast<double>(ended) : 0.0;
}

// Idle: per-pair growth between two samples.
double PerPair(uint64_t before, uint64_t hold, uint64_t pairs) {
  if (pairs == 0) return 0;
  return (static_cast<double>(hold) - static_cast<double>(before)) / static_cast<double>(pairs);
}

class JsonWriter {
 public:
  void Add(const std::string& key, const std::string& raw) {
    out_ << (first_ ? "{" : ", ") << JsonString(key) << ": " << raw;
    first_ = false;
  }
  void Str(const std::string& key, const std::string& v) { Add(key, JsonString(v)); }
  void Int(const std::string& key, uint64_t v) { Add(key, std::to_string(v)); }
  void Real(const std::string& key, double v, int decimals = 3) { Add(key, Num(v, decimals)); }
  void Bool(const std::string& key, bool v) { Add(key, v ? "true" : "false"); }
  std::string Done() { return out_.str() + "}"; }

 private:
  std::ostringstream out_;
  bool first_ = true;
};

}  // namespace

double GbitPerSecond(uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) * 8.0 / seconds / 1e9 : 0.0;
}

int Report::ExitCode() const {
  if (total_errors() > 0 || mismatches > 0 || !complete || dropped > 0) return 1;
  return mode == Mode::kUdp && requests == 0 ? 1 : 0;
}

std::string FormatJson(const Report& r) {
  JsonWriter j;
  j.Str("mode", ModeName(r.mode));
  j.Bool("complete", r.complete);
  j.Real("seconds", r.seconds);
  j.Int("workers", r.workers);
  j.Bool("tls", r.tls);
  j.Int("errors", r.total_errors());
  for (int k = 0; k < 4; ++k) {
    j.Int(std::string("errors_") + ErrorKindName(static_cast<ErrorKind>(k)), r.errors[k]);
  }
  j.Str("first_error", r.first_error);
  j.Int("bytes_up", r.bytes_up);
  j.Int("bytes_down", r.bytes_down);
  switch (r.mode) {
    case Mode::kBulk: {
      uint64_t bytes = r.bytes_up + r.bytes_down;
      j.Str("direction", DirectionName(r.direction));
      j.Int("streams", r.conns);
      j.Bool("verify", r.verify);
      j.Int("bytes", bytes);
      j.Real("gib", static_cast<double>(bytes) / (1ULL << 30), 4);
      j.Real("gbit_per_s", GbitPerSecond(bytes, r.seconds));
      j.Int("mismatches", r.mismatches);
      break;
    }
    case Mode::kRr:
      j.Int("conns", r.conns);
      j.Int("req", r.req);
      j.Int("resp", r.resp);
      j.Int("requests", r.requests);
      j.Real("rps", PerSecond(r.requests, r.seconds), 1);
      break;
    case Mode::kConnect:
      j.Int("conns", r.conns);
      j.Int("req", r.req);
      j.Int("resp", r.resp);
      j.Int("connections", r.requests);
      j.Real("conns_per_s", PerSecond(r.requests, r.seconds), 1);
      break;
    case Mode::kIdle:
      j.Int("pairs", r.conns);
      j.Int("ready", r.ready);
      j.Int("dropped", r.dropped);
      j.Int("relay_pid", static_cast<uint64_t>(r.relay_pid));
      if (r.relay_before && r.relay_hold) {
        j.Int("rss_before_kib", r.relay_before->rss_kib);
        j.Int("rss_hold_kib", r.relay_hold->rss_kib);
        if (r.relay_after) j.Int("rss_after_kib", r.relay_after->rss_kib);
        j.Int("fds_before", r.relay_before->fds);
        j.Int("fds_hold", r.relay_hold->fds);
        if (r.relay_after) j.Int("fds_after", r.relay_after->fds);
        j.Real("kib_per_pair", PerPair(r.relay_before->rss_kib, r.relay_hold->rss_kib, r.ready), 2);
        j.Real("fds_per_pair", PerPair(r.relay_before->fds, r.relay_hold->fds, r.ready), 3);
      }
      break;
    case Mode::kUdp:
      j.Int("flows", r.conns);
      j.Int("size", r.req);
      j.Int("requests", r.requests);
      j.Real("rps", PerSecond(r.requests, r.seconds), 1);
      j.Int("sent", r.sent);
      j.Int("received", r.received);
      j.Int("lost", r.lost);
      j.Real("loss_rate", LossRate(r), 6);
      j.Int("late", r.late);
      j.Int("mismatches", r.mismatches);
      j.Int("unreachable", r.unreachable);
      j.Int("datagrams", r.sent + r.received);
      if (r.client_cpu_s) {
        j.Real("client_cpu_s", *r.client_cpu_s);
        j.Real("client_cpu_us_per_req",
               r.requests ? *r.client_cpu_s * 1e6 / static_cast<double>(r.requests) : 0.0, 2);
      }
      break;
    case Mode::kBackend:
      break;
  }
  if (HasLatency(r.mode)) {
    const Histogram& h = r.latency;
    j.Real("p50_us", Us(h.ValueAtPercentile(50)), 1);
    j.Real("p90_us", Us(h.ValueAtPercentile(90)), 1);
    j.Real("p99_us", Us(h.ValueAtPercentile(99)), 1);
    j.Real("p999_us", Us(h.ValueAtPercentile(99.9)), 1);
    j.Real("min_us", Us(h.min()), 1);
    j.Real("mean_us", h.mean() / 1000.0, 1);
    j.Real("max_us", Us(h.max()), 1);
    j.Int("latency_clamped", h.underflows() + h.overflows());
  }
  return j.Done();
}

std::string FormatTable(const Report& r) {
  std::ostringstream o;
  char line[256];
  auto row = [&](const char* name, const std::string& value) {
    std::snprintf(line, sizeof(line), "  %-16s %s\n", name, value.c_str());
    o << line;
  };
  o << "zrelay-load " << ModeName(r.mode) << (r.tls ? " (TLS)" : "")
    << (r.complete ? "" : "  -- INCOMPLETE: " + r.incomplete_why) << "\n";
  row("seconds", Num(r.seconds, 2));
  row("workers", std::to_string(r.workers));
  switch (r.mode) {
    case Mode::kBulk: {
      uint64_t bytes = r.bytes_up + r.bytes_down;
      row("direction", DirectionName(r.direction));
      row("streams", std::to_string(r.conns));
      row("moved", FormatBytes(static_cast<double>(bytes)) + " (up " +
                       FormatBytes(static_cast<double>(r.bytes_up)) + ", down " +
                       FormatBytes(static_cast<double>(r.bytes_down)) + ")");
      row("throughput", Num(GbitPerSecond(bytes, r.seconds), 2) + " Gbit/s");
      std::string verify = "off";
      if (r.verify) {
        verify = r.mismatches > 0       ? std::to_string(r.mismatches) + " MISMATCHED bytes"
                 : r.total_errors() > 0 ? "no mismatch seen, but streams failed (see errors)"
                                        : "byte-exact";
      }
      row("verify", verify);
      break;
    }
    case Mode::kRr:
    case Mode::kConnect:
      row("conns", std::to_string(r.conns) + (r.mode == Mode::kConnect ? " in flight" : ""));
      row("req / resp", std::to_string(r.req) + " B / " + std::to_string(r.resp) + " B");
      if (r.mode == Mode::kRr) {
        row("requests", std::to_string(r.requests));
        row("rate", Num(PerSecond(r.requests, r.seconds), 1) + " req/s");
      } else {
        row("connections", std::to_string(r.requests));
        row("rate", Num(PerSecond(r.requests, r.seconds), 1) + " conn/s");
      }
      {
        const Histogram& h = r.latency;
        std::snprintf(line, sizeof(line),
                      "p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  (min %.1f, mean %.1f, max %.1f)",
                      Us(h.ValueAtPercentile(50)), Us(h.ValueAtPercentile(90)),
                      Us(h.ValueAtPercentile(99)), Us(h.ValueAtPercentile(99.9)), Us(h.min()),
                      h.mean() / 1000.0, Us(h.max()));
        row("latency us", line);
      }
      break;
    case Mode::kUdp: {
      row("flows", std::to_string(r.conns));
      row("size", std::to_string(r.req) + " B each way");
      row("requests", std::to_string(r.requests) + " answered (" + std::to_string(r.sent) +
                          " sent, " + std::to_string(r.received) + " datagrams received)");
      row("rate", Num(PerSecond(r.requests, r.seconds), 1) + " req/s");
      row("loss", std::to_string(r.lost) + " lost (" + Num(100.0 * LossRate(r), 4) + "%), " +
                      std::to_string(r.late) + " late, " + std::to_string(r.unreachable) +
                      " ICMP unreachable");
      row("verify", r.mismatches > 0  ? std::to_string(r.mismatches) + " MISMATCHED datagrams"
                    : r.received == 0 ? "nothing received to check"
                                      : "byte-exact");
      const Histogram& h = r.latency;
      std::snprintf(line, sizeof(line),
                    "p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  (min %.1f, mean %.1f, max %.1f)",
                    Us(h.ValueAtPercentile(50)), Us(h.ValueAtPercentile(90)),
                    Us(h.ValueAtPercentile(99)), Us(h.ValueAtPercentile(99.9)), Us(h.min()),
                    h.mean() / 1000.0, Us(h.max()));
      row("latency us", line);
      if (r.client_cpu_s) {
        row("client CPU",
            Num(*r.client_cpu_s, 2) + " s" +
                (r.requests
                     ? ", " + Num(*r.client_cpu_s * 1e6 / static_cast<double>(r.requests), 2) +
                           " us/request"
                     : ""));
      }
      break;
    }
    case Mode::kIdle:
      row("pairs", std::to_string(r.ready) + " of " + std::to_string(r.conns) + " held, " +
                       std::to_string(r.dropped) + " dropped");
      if (r.relay_before && r.relay_hold) {
        auto sample = [](const ProcSample& s) {
          return std::to_string(s.rss_kib) + " KiB RSS, " + std::to_string(s.fds) + " fds";
        };
        row("relay before", sample(*r.relay_before));
        row("relay holding", sample(*r.relay_hold));
        if (r.relay_after) row("relay after", sample(*r.relay_after));
        row("per idle pair",
            Num(PerPair(r.relay_before->rss_kib, r.relay_hold->rss_kib, r.ready), 2) + " KiB, " +
                Num(PerPair(r.relay_before->fds, r.relay_hold->fds, r.ready), 3) + " fds");
      }
      break;
    case Mode::kBackend:
      break;
  }
  std::string errors = std::to_string(r.total_errors());
  if (r.total_errors() > 0) {
    errors += " (";
    for (int k = 0; k < 4; ++k) {
      errors += std::string(k ? ", " : "") + ErrorKindName(static_cast<ErrorKind>(k)) + " " +
                std::to_string(r.errors[k]);
    }
    errors += ")";
  }
  row("errors", errors);
  if (!r.first_error.empty()) row("first error", r.first_error);
  return o.str();
}

}  // namespace zrelay::load
