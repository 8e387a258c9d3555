#include "tools/admin/prometheus_text.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "relay/relay.h"

namespace zrelay {
namespace {

// A series' labels: name, value (the value unescaped).
using Labels = std::vector<std::pair<std::string_view, std::string>>;

// Shortest text that reads back as the same double, without an exponent in
// the range seconds and bucket bounds live in ("0.00025", not "2.5e-04").
std::string FormatDouble(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char text[400];
  const double magnitude = std::fabs(value);
  const bool plain = magnitude == 0 || (magnitude >= 1e-6 && magnitude < 1e15);
  auto [end, ec] = plain ? std::to_chars(text, text + sizeof(text), value, std::chars_format::fixed)
                         : std::to_chars(text, text + sizeof(text), value);
  return ec == std::errc() ? std::string(text, end) : "NaN";
}

// Writes families one after the other: HELP and TYPE, then the series.
class Exposition {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    text_.append("# HELP ").append(name).append(" ").append(help).append("\n");
    text_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  }
  void Sample(std::string_view name, const Labels& labels, std::string_view value) {
    text_.append(name);
    if (!labels.empty()) {
      text_.push_back('{');
      for (size_t i = 0; i < labels.size(); ++i) {
        if (i > 0) text_.push_back(',');
        text_.append(labels[i].first).append("=\"");
        text_.append(EscapeLabelValue(labels[i].second)).append("\"");
      }
      text_.push_back('}');
    }
    text_.append(" ").append(value).append("\n");
  }
  void Sample(std::string_view name, const Labels& labels, uint64_t value) {
    Sample(name, labels, std::to_string(value));
  }
  void Sample(std::string_view name, const Labels& labels, double value) {
    Sample(name, labels, FormatDouble(value));
  }
  std::string Take() { return std::move(text_); }

 private:
  std::string text_;
};

// One series of a family per row (a listener, a backend, a worker), or one
// per row and value of an extra label (side="client" and side="backend").
template <typename Row>
struct Series {
  const char* label_value;  // the extra label's value; unused without one
  uint64_t (*read)(const Row&);
};

// Each row with its own labels.
template <typename Row>
using Rows = std::vector<std::pair<Labels, const Row*>>;

template <typename Row>
void WriteFamily(Exposition& out, const Rows<Row>& rows, const char* name, const char* type,
                 const char* help, const char* label, std::initializer_list<Series<Row>> series) {
  out.Family(name, type, help);
  for (const auto& [labels, row] : rows) {
    for (const Series<Row>& one : series) {
      Labels all = labels;
      if (label != nullptr) all.emplace_back(label, one.label_value);
      out.Sample(name, all, one.read(*row));
    }
  }
}

// A family with no extra label: one series per row.
template <typename Row>
void WriteFamily(Exposition& out, const Rows<Row>& rows, const char* name, const char* type,
                 const char* help, uint64_t (*read)(const Row&)) {
  WriteFamily(out, rows, name, type, help, nullptr, {{"", read}});
}

constexpr const char* kCounter = "counter";
constexpr const char* kGauge = "gauge";

using L = ListenerMetrics;
using B = BackendMetrics;
using W = WorkerMetrics;

// A UDP listener's flows count in the connection families (a flow is its
// connection: accepted, open, closed, bytes relayed); these are its own.
void WriteUdpListeners(Exposition& out, const MetricsSnapshot& snapshot) {
  Rows<L> rows;
  for (const L& listener : snapshot.listeners) {
    if (listener.protocol == "udp") rows.push_back({{{"listener", listener.name}}, &listener});
  }
  WriteFamily<L>(out, rows, "zrelay_listener_udp_datagrams_total", kCounter,
                 "Datagrams a UDP listener relayed, by the side that sent them.", "side",
                 {{"client", [](const L& l) { return l.datagrams_client_to_backend_total; }},
                  {"backend", [](const L& l) { return l.datagrams_backend_to_client_total; }}});
  WriteFamily<L>(out, rows, "zrelay_listener_udp_drops_total", kCounter,
                 "Datagrams a UDP listener dropped: its socket's receive buffer was full, "
                 "max_connections flows were open, or a send failed.",
                 "reason",
                 {{"receive_buffer", [](const L& l) { return l.udp_receive_drops_total; }},
                  {"flow_cap", [](const L& l) { return l.udp_flow_cap_drops_total; }},
                  {"send", [](const L& l) { return l.udp_send_drops_total; }}});
  WriteFamily<L>(out, rows, "zrelay_listener_udp_backend_unreachable_total", kCounter,
                 "ICMP errors (port or host unreachable) from backends on a UDP listener's flows.",
                 [](const L& l) { return l.udp_backend_unreachable_total; });
}

void WriteListeners(Exposition& out, const MetricsSnapshot& snapshot) {
  Rows<L> rows;
  for (const L& listener : snapshot.listeners) {
    rows.push_back({{{"listener", listener.name}}, &listener});
  }
  // The protocol as a label of its own family, so that every other family
  // keeps the labels it had (an info metric, joined on `listener`).
  out.Family("zrelay_listener_info", kGauge,
             "Always 1; the listener's protocol (tcp or udp) in a label.");
  for (const auto& [labels, listener] : rows) {
    Labels all = labels;
    all.emplace_back("protocol", listener->protocol);
    out.Sample("zrelay_listener_info", all, uint64_t{1});
  }
  WriteFamily<L>(out, rows, "zrelay_listener_connections_accepted_total", kCounter,
                 "Client connections accepted (UDP: flows started).",
                 [](const L& l) { return l.accepted_total; });
  WriteFamily<L>(out, rows, "zrelay_listener_connections_open", kGauge,
                 "Client connections open now (connecting, handshaking or relaying; UDP: flows).",
                 [](const L& l) { return l.open; });
  WriteFamily<L>(out, rows, "zrelay_listener_max_connections", kGauge,
                 "Client connections open at once, at most, per listening address (UDP: flows).",
                 [](const L& l) { return l.max_connections; });

  out.Family("zrelay_listener_connections_closed_total", kCounter,
             "Client connections closed, by cause (UDP: flows ended).");
  for (const auto& [labels, listener] : rows) {
    for (size_t cause = 0; cause < kCloseCauseCount; ++cause) {
      Labels all = labels;
      all.emplace_back("cause", CloseCauseName(static_cast<CloseCause>(cause)));
      out.Sample("zrelay_listener_connections_closed_total", all, listener->closed_total[cause]);
    }
  }

  WriteFamily<L>(out, rows, "zrelay_listener_relayed_bytes_total", kCounter,
                 "Bytes relayed, by the side that sent them.", "side",
                 {{"client", [](const L& l) { return l.bytes_client_to_backend_total; }},
                  {"backend", [](const L& l) { return l.bytes_backend_to_client_total; }}});
  WriteFamily<L>(out, rows, "zrelay_listener_spliced_bytes_total", kCounter,
                 "Bytes relayed through kernel pipes (splice, zero copy), both sides.",
                 [](const L& l) { return l.bytes_spliced_total; });
  WriteFamily<L>(out, rows, "zrelay_listener_copied_bytes_total", kCounter,
                 "Bytes relayed through user-space ring buffers, both sides.",
                 [](const L& l) { return l.bytes_copied_total; });
  WriteFamily<L>(out, rows, "zrelay_listener_tls_handshakes_total", kCounter,
                 "TLS handshakes finished, with clients (terminated) and backends (originated).",
                 "side",
                 {{"client", [](const L& l) { return l.client_tls_handshakes_total; }},
                  {"backend", [](const L& l) { return l.backend_tls_handshakes_total; }}});
  WriteFamily<L>(out, rows, "zrelay_listener_tls_handshake_failures_total", kCounter,
                 "TLS handshakes failed (timeout, error, reset), with clients and backends.",
                 "side",
                 {{"client", [](const L& l) { return l.client_tls_handshake_failures_total; }},
                  {"backend", [](const L& l) { return l.backend_tls_handshake_failures_total; }}});
  WriteFamily<L>(out, rows, "zrelay_listener_backend_connect_failures_total", kCounter,
                 "Backend connect tries that failed (refused, unreachable, timed out).",
                 [](const L& l) { return l.connect_failures_total; });
  WriteFamily<L>(out, rows, "zrelay_listener_backend_retries_total", kCounter,
                 "Backend connects tried again on another backend after one failed.",
                 [](const L& l) { return l.backend_retries_total; });
  WriteFamily<L>(out, rows, "zrelay_listener_no_healthy_backend_total", kCounter,
                 "Clients closed at once because no backend of the pool was healthy.",
                 [](const L& l) { return l.no_healthy_backend_total; });
  WriteFamily<L>(
      out, rows, "zrelay_listener_accept_pauses_total", kCounter,
      "Times accepting paused: out of fds at accept or at a backend connect, or "
      "max_connections open.",
      "reason",
      {{"accept_fd_exhausted", [](const L& l) { return l.accept_fd_exhausted_total; }},
       {"backend_fd_exhausted", [](const L& l) { return l.backend_fd_exhausted_total; }},
       {"max_connections", [](const L& l) { return l.accept_paused_max_connections_total; }}});
  WriteUdpListeners(out, snapshot);
}

// The histogram's buckets as the format wants them: cumulative, +Inf last,
// and _count equal to the +Inf bucket. The snapshot's fields are read one
// at a time while workers observe, so its own count may be off from its
// buckets by an observation in flight; the buckets decide.
void WriteHistogram(Exposition& out, std::string_view name, const Labels& labels,
                    const HistogramSnapshot& histogram) {
  const std::string bucket = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < histogram.bounds_seconds.size(); ++i) {
    if (i < histogram.counts.size()) cumulative += histogram.counts[i];
    Labels with_le = labels;
    with_le.emplace_back("le", FormatDouble(histogram.bounds_seconds[i]));
    out.Sample(bucket, with_le, cumulative);
  }
  for (size_t i = histogram.bounds_seconds.size(); i < histogram.counts.size(); ++i) {
    cumulative += histogram.counts[i];
  }
  Labels with_le = labels;
  with_le.emplace_back("le", "+Inf");
  out.Sample(bucket, with_le, cumulative);
  out.Sample(std::string(name) + "_sum", labels, histogram.sum_seconds);
  out.Sample(std::string(name) + "_count", labels, cumulative);
}

void WriteBackends(Exposition& out, const MetricsSnapshot& snapshot) {
  Rows<B> rows;
  for (const L& listener : snapshot.listeners) {
    for (const B& backend : listener.backends) {
      Labels labels = {{"listener", listener.name}, {"backend", backend.address}};
      // A route's pool may list an address the listener's own pool has too.
      if (!backend.route.empty()) labels.emplace_back("route", backend.route);
      rows.push_back({std::move(labels), &backend});
    }
  }
  WriteFamily<B>(out, rows, "zrelay_backend_up", kGauge,
                 "1 when the backend gets new connections: no active health check marked it "
                 "down and passive health did not eject it.",
                 [](const B& b) { return uint64_t{b.up}; });
  WriteFamily<B>(out, rows, "zrelay_backend_health_check_down", kGauge,
                 "1 when active health checks marked the backend down.",
                 [](const B& b) { return uint64_t{b.down}; });
  WriteFamily<B>(out, rows, "zrelay_backend_ejected", kGauge,
                 "1 while passive health has the backend out after consecutive connect failures.",
                 [](const B& b) { return uint64_t{b.ejected}; });
  WriteFamily<B>(out, rows, "zrelay_backend_connections_open", kGauge,
                 "Connections to the backend open or connecting now.",
                 [](const B& b) { return b.connections_open; });
  WriteFamily<B>(out, rows, "zrelay_backend_connects_total", kCounter,
                 "Connects to the backend that succeeded.",
                 [](const B& b) { return b.connects_total; });
  WriteFamily<B>(out, rows, "zrelay_backend_connect_failures_total", kCounter,
                 "Connects to the backend that failed (refused, unreachable, timed out).",
                 [](const B& b) { return b.connect_failures_total; });

  constexpr const char* kConnectSeconds = "zrelay_backend_connect_duration_seconds";
  out.Family(kConnectSeconds, "histogram",
             "Time from starting a backend connect to connected, of connects that succeeded.");
  for (const auto& [labels, backend] : rows) {
    WriteHistogram(out, kConnectSeconds, labels, backend->connect_seconds);
  }
}

void WriteWorkers(Exposition& out, const MetricsSnapshot& snapshot) {
  Rows<W> rows;
  for (size_t i = 0; i < snapshot.workers.size(); ++i) {
    rows.push_back({{{"worker", std::to_string(i)}}, &snapshot.workers[i]});
  }
  WriteFamily<W>(out, rows, "zrelay_worker_pairs_open", kGauge,
                 "Pairs open on the worker, of every listener.",
                 [](const W& w) { return w.pairs_open; });
  WriteFamily<W>(out, rows, "zrelay_worker_pipes_in_use", kGauge,
                 "Kernel pipes held by directions relaying through splice.",
                 [](const W& w) { return w.pipes_in_use; });
  WriteFamily<W>(out, rows, "zrelay_worker_pipes_pooled", kGauge,
                 "Kernel pipes kept empty in the worker's pool for the next direction.",
                 [](const W& w) { return w.pipes_pooled; });
  WriteFamily<W>(out, rows, "zrelay_worker_pipe_pool_exhausted_total", kCounter,
                 "Directions that wanted a pipe, found the pool at its cap and copied instead.",
                 [](const W& w) { return w.pipe_pool_exhausted_total; });
  WriteFamily<W>(out, rows, "zrelay_worker_buffers_in_use", kGauge,
                 "Ring buffers held by directions relaying through copies.",
                 [](const W& w) { return w.buffers_in_use; });
  WriteFamily<W>(out, rows, "zrelay_worker_buffers_pooled", kGauge,
                 "Ring buffers kept in the worker's pool for the next direction.",
                 [](const W& w) { return w.buffers_pooled; });
  WriteFamily<W>(out, rows, "zrelay_worker_splice_switches_total", kCounter,
                 "Directions auto mode moved from copy to splice.",
                 [](const W& w) { return w.splice_switches_total; });
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string escaped;
  escaped.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        escaped.append("\\\\");
        break;
      case '"':
        escaped.append("\\\"");
        break;
      case '\n':
        escaped.append("\\n");
        break;
      default:
        escaped.push_back(c);
    }
  }
  return escaped;
}

std::string PrometheusText(const MetricsSnapshot& snapshot, double start_time_seconds) {
  Exposition out;
  out.Family("zrelay_start_time_seconds", kGauge, "Unix time zrelayd started serving.");
  out.Sample("zrelay_start_time_seconds", {}, start_time_seconds);
  out.Family("zrelay_draining", kGauge,
             "1 once zrelayd stopped accepting and waits for open pairs to finish.");
  out.Sample("zrelay_draining", {}, uint64_t{snapshot.draining});
  WriteListeners(out, snapshot);
  WriteBackends(out, snapshot);
  WriteWorkers(out, snapshot);
  return out.Take();
}

}  // namespace zrelay
