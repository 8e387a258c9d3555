// Report: the result of one client run, and its two renderings: a table for
// people and one JSON object (one line) for the benchmark scripts.
//
// JSON keys (present for the modes named; numbers are plain JSON numbers):
//   all      mode, complete, seconds, workers, errors, errors_refused,
//            errors_reset, errors_timeout, errors_other, first_error (string,
//            "" when none), bytes_up, bytes_down, tls
//   bulk     direction, streams, verify, bytes (up + down), gib, gbit_per_s,
//            mismatches
//   rr       conns, req, resp, requests, rps
//   connect  conns, req, resp, connections, conns_per_s
//   udp      flows, size, requests (answered), rps, sent, received, lost,
//            loss_rate (lost / requests that ended), late, mismatches,
//            unreachable, datagrams (sent + received), client_cpu_s,
//            client_cpu_us_per_req
//   rr, connect, udp: latency in microseconds: p50_us, p90_us, p99_us,
//            p999_us, min_us, mean_us, max_us, latency_clamped
//   idle     pairs, ready, dropped, relay_pid and, with --relay-pid,
//            rss_before_kib, rss_hold_kib, rss_after_kib, fds_before,
//            fds_hold, fds_after, kib_per_pair, fds_per_pair
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "tools/load/config.h"
#include "tools/load/histogram.h"
#include "tools/load/proc_stats.h"

namespace zrelay::load {

struct Report {
  Mode mode = Mode::kBulk;
  Direction direction = Direction::kUp;
  bool verify = false;
  bool tls = false;
  uint64_t workers = 0;
  uint64_t conns = 0;  // streams, conns, pairs or flows
  uint64_t req = 0;    // udp: --size (both ways)
  uint64_t resp = 0;

  bool complete = true;  // false: hit --timeout or interrupted
  std::string incomplete_why;
  double seconds = 0;

  uint64_t bytes_up = 0;
  uint64_t bytes_down = 0;
  uint64_t requests = 0;  // rr: responses; connect: connections completed; udp: replies
  uint64_t mismatches = 0;
  uint64_t errors[4] = {};  // by ErrorKind
  std::string first_error;
  Histogram latency;  // nanoseconds

  // idle
  uint64_t ready = 0;
  uint64_t dropped = 0;
  int relay_pid = 0;
  std::optional<ProcSample> relay_before, relay_hold, relay_after;

  // udp (see udp_flow.h for what each counts)
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t lost = 0;
  uint64_t late = 0;
  uint64_t unreachable = 0;
  // This process's CPU (user + system, all threads) over the run; udp only.
  std::optional<double> client_cpu_s;

  uint64_t total_errors() const { return errors[0] + errors[1] + errors[2] + errors[3]; }
  // 0 when clean; 1 on any error, mismatch or incomplete run, and a udp run
  // in which no request was answered (losses alone are not a failure).
  int ExitCode() const;
};

std::string FormatTable(const Report& report);
std::string FormatJson(const Report& report);

// "12.3 Gbit/s"-style rate helpers shared with the progress lines.
double GbitPerSecond(uint64_t bytes, double seconds);

}  // namespace zrelay::load
