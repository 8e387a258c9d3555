// tools/admin/prometheus_text: a hand-built MetricsSnapshot rendered, line
// by line, and checked by Prometheus' own promtool.
#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/tools/promtool_check.h"
#include "tools/admin/prometheus_text.h"

namespace zrelay {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Every line of `want` is a line of `text`.
void ExpectLines(const std::string& text, const std::vector<std::string>& want) {
  std::vector<std::string> lines = Lines(text);
  std::set<std::string> have(lines.begin(), lines.end());
  for (const std::string& line : want) EXPECT_TRUE(have.count(line)) << "missing line: " << line;
}

MetricsSnapshot Snapshot() {
  MetricsSnapshot snapshot;
  ListenerMetrics web;
  web.name = "web";
  web.addresses = {"127.0.0.1:8080"};
  web.max_connections = 1000;
  web.accepted_total = 42;
  web.open = 3;
  web.closed_total = {30, 5, 1, 0, 2, 0, 1};  // by CloseCause
  web.bytes_client_to_backend_total = 123456;
  web.bytes_backend_to_client_total = 987654321;
  web.bytes_spliced_total = 1000000;
  web.bytes_copied_total = 987654321 + 123456 - 1000000;
  web.client_tls_handshakes_total = 40;
  web.client_tls_handshake_failures_total = 2;
  web.backend_tls_handshakes_total = 7;
  web.backend_tls_handshake_failures_total = 1;
  web.connect_failures_total = 4;
  web.backend_retries_total = 3;
  web.no_healthy_backend_total = 1;
  web.accept_fd_exhausted_total = 5;
  web.accept_paused_max_connections_total = 6;
  web.backend_fd_exhausted_total = 8;

  BackendMetrics up;
  up.address = "10.0.0.5:9000";
  up.connections_open = 2;
  up.connects_total = 38;
  up.connect_failures_total = 4;
  up.connect_seconds.bounds_seconds.assign(kConnectSecondsBounds.begin(),
                                           kConnectSecondsBounds.end());
  up.connect_seconds.counts.assign(kConnectSecondsBounds.size() + 1, 0);
  up.connect_seconds.counts[0] = 10;  // <= 0.0001
  up.connect_seconds.counts[1] = 20;  // <= 0.00025
  up.connect_seconds.counts[5] = 5;   // <= 0.005
  up.connect_seconds.counts[12] = 3;  // above 1 s
  up.connect_seconds.sum_seconds = 3.5;
  up.connect_seconds.count = 38;
  BackendMetrics ejected;
  ejected.address = "[::1]:9001";
  ejected.host = "app.internal";
  ejected.up = false;
  ejected.ejected = true;
  web.backends = {up, ejected};
  snapshot.listeners.push_back(web);

  // A name with everything the format escapes: \ " and a line feed.
  ListenerMetrics odd;
  odd.name = "a\\b\"c\nd";
  BackendMetrics down;
  down.address = "unix:/run/app.sock";
  down.up = false;
  down.down = true;
  odd.backends = {down};
  snapshot.listeners.push_back(odd);

  // A UDP listener: its flows in the connection families, datagrams and
  // drops in families of their own.
  ListenerMetrics dns;
  dns.name = "dns";
  dns.protocol = "udp";
  dns.addresses = {"127.0.0.1:5353"};
  dns.accepted_total = 200;
  dns.open = 12;
  dns.bytes_client_to_backend_total = 6400;
  dns.bytes_backend_to_client_total = 16000;
  dns.datagrams_client_to_backend_total = 201;
  dns.datagrams_backend_to_client_total = 199;
  dns.udp_receive_drops_total = 7;
  dns.udp_flow_cap_drops_total = 3;
  dns.udp_send_drops_total = 2;
  dns.udp_backend_unreachable_total = 5;
  BackendMetrics resolver;
  resolver.address = "127.0.0.1:53";
  dns.backends = {resolver};
  snapshot.listeners.push_back(dns);

  WorkerMetrics first;
  first.pairs_open = 2;
  first.pipes_in_use = 4;
  first.pipes_pooled = 12;
  first.pipe_pool_exhausted_total = 1;
  first.buffers_in_use = 2;
  first.buffers_pooled = 6;
  first.splice_switches_total = 9;
  WorkerMetrics second;
  second.pairs_open = 1;
  snapshot.workers = {first, second};
  return snapshot;
}

TEST(PrometheusTextTest, ListenerCountersAndGauges) {
  std::string text = PrometheusText(Snapshot(), 1764558131.5);
  ExpectLines(
      text,
      {
          "# HELP zrelay_listener_connections_accepted_total Client connections accepted (UDP: "
          "flows started).",
          "# TYPE zrelay_listener_connections_accepted_total counter",
          "zrelay_listener_connections_accepted_total{listener=\"web\"} 42",
          "# TYPE zrelay_listener_connections_open gauge",
          "zrelay_listener_connections_open{listener=\"web\"} 3",
          "zrelay_listener_max_connections{listener=\"web\"} 1000",
          "zrelay_listener_relayed_bytes_total{listener=\"web\",side=\"client\"} 123456",
          "zrelay_listener_relayed_bytes_total{listener=\"web\",side=\"backend\"} 987654321",
          "zrelay_listener_spliced_bytes_total{listener=\"web\"} 1000000",
          "zrelay_listener_copied_bytes_total{listener=\"web\"} 986777777",
          "zrelay_listener_tls_handshakes_total{listener=\"web\",side=\"client\"} 40",
          "zrelay_listener_tls_handshakes_total{listener=\"web\",side=\"backend\"} 7",
          "zrelay_listener_tls_handshake_failures_total{listener=\"web\",side=\"client\"} 2",
          "zrelay_listener_tls_handshake_failures_total{listener=\"web\",side=\"backend\"} 1",
          "zrelay_listener_backend_connect_failures_total{listener=\"web\"} 4",
          "zrelay_listener_backend_retries_total{listener=\"web\"} 3",
          "zrelay_listener_no_healthy_backend_total{listener=\"web\"} 1",
          "zrelay_listener_accept_pauses_total{listener=\"web\",reason=\"accept_fd_exhausted\"} 5",
          "zrelay_listener_accept_pauses_total{listener=\"web\",reason=\"backend_fd_exhausted\"} 8",
          "zrelay_listener_accept_pauses_total{listener=\"web\",reason=\"max_connections\"} 6",
          "zrelay_start_time_seconds 1764558131.5",
          "zrelay_draining 0",
      });
}

TEST(PrometheusTextTest, ListenerProtocolInAnInfoMetric) {
  ExpectLines(PrometheusText(Snapshot(), 0),
              {
                  "# TYPE zrelay_listener_info gauge",
                  "zrelay_listener_info{listener=\"web\",protocol=\"tcp\"} 1",
                  "zrelay_listener_info{listener=\"a\\\\b\\\"c\\nd\",protocol=\"tcp\"} 1",
                  "zrelay_listener_info{listener=\"dns\",protocol=\"udp\"} 1",
              });
}

TEST(PrometheusTextTest, UdpListenerDatagramsDropsAndUnreachable) {
  std::string text = PrometheusText(Snapshot(), 0);
  ExpectLines(text,
              {
                  "# TYPE zrelay_listener_udp_datagrams_total counter",
                  "zrelay_listener_udp_datagrams_total{listener=\"dns\",side=\"client\"} 201",
                  "zrelay_listener_udp_datagrams_total{listener=\"dns\",side=\"backend\"} 199",
                  "# TYPE zrelay_listener_udp_drops_total counter",
                  "zrelay_listener_udp_drops_total{listener=\"dns\",reason=\"receive_buffer\"} 7",
                  "zrelay_listener_udp_drops_total{listener=\"dns\",reason=\"flow_cap\"} 3",
                  "zrelay_listener_udp_drops_total{listener=\"dns\",reason=\"send\"} 2",
                  "# TYPE zrelay_listener_udp_backend_unreachable_total counter",
                  "zrelay_listener_udp_backend_unreachable_total{listener=\"dns\"} 5",
                  // Flows in the connection families, as a TCP listener's clients.
                  "zrelay_listener_connections_accepted_total{listener=\"dns\"} 200",
                  "zrelay_listener_connections_open{listener=\"dns\"} 12",
                  "zrelay_listener_relayed_bytes_total{listener=\"dns\",side=\"client\"} 6400",
                  "zrelay_listener_relayed_bytes_total{listener=\"dns\",side=\"backend\"} 16000",
              });
  // A TCP listener has no series in the UDP families.
  for (const std::string& line : Lines(text)) {
    if (line.rfind("zrelay_listener_udp_", 0) == 0) {
      EXPECT_NE(line.find("listener=\"dns\""), std::string::npos) << line;
    }
  }
}

TEST(PrometheusTextTest, ClosedByEveryCauseName) {
  std::string text = PrometheusText(Snapshot(), 0);
  ExpectLines(
      text,
      {
          "# TYPE zrelay_listener_connections_closed_total counter",
          "zrelay_listener_connections_closed_total{listener=\"web\",cause=\"done\"} 30",
          "zrelay_listener_connections_closed_total{listener=\"web\",cause=\"reset\"} 5",
          "zrelay_listener_connections_closed_total{listener=\"web\",cause=\"timeout\"} 1",
          "zrelay_listener_connections_closed_total{listener=\"web\",cause=\"error\"} 0",
          "zrelay_listener_connections_closed_total{listener=\"web\",cause=\"connect-failed\"} 2",
          "zrelay_listener_connections_closed_total{listener=\"web\",cause=\"drained\"} 0",
          "zrelay_listener_connections_closed_total{listener=\"web\",cause=\"truncated\"} 1",
      });
}

TEST(PrometheusTextTest, BackendHealthAndCumulativeHistogram) {
  std::string text = PrometheusText(Snapshot(), 0);
  const std::string web = "listener=\"web\",backend=\"10.0.0.5:9000\"";
  const std::string bucket = "zrelay_backend_connect_duration_seconds_bucket{" + web + ",le=";
  ExpectLines(text,
              {
                  "zrelay_backend_up{" + web + "} 1",
                  "zrelay_backend_up{listener=\"web\",backend=\"[::1]:9001\"} 0",
                  "zrelay_backend_ejected{listener=\"web\",backend=\"[::1]:9001\"} 1",
                  "zrelay_backend_health_check_down{listener=\"web\",backend=\"[::1]:9001\"} 0",
                  "zrelay_backend_connections_open{" + web + "} 2",
                  "zrelay_backend_connects_total{" + web + "} 38",
                  "zrelay_backend_connect_failures_total{" + web + "} 4",
                  "# TYPE zrelay_backend_connect_duration_seconds histogram",
                  bucket + "\"0.0001\"} 10",
                  bucket + "\"0.00025\"} 30",
                  bucket + "\"0.0005\"} 30",
                  bucket + "\"0.001\"} 30",
                  bucket + "\"0.0025\"} 30",
                  bucket + "\"0.005\"} 35",
                  bucket + "\"0.01\"} 35",
                  bucket + "\"0.5\"} 35",
                  bucket + "\"1\"} 35",
                  bucket + "\"+Inf\"} 38",
                  "zrelay_backend_connect_duration_seconds_sum{" + web + "} 3.5",
                  "zrelay_backend_connect_duration_seconds_count{" + web + "} 38",
              });
  // +Inf is the last bucket of its series.
  std::vector<std::string> lines = Lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] == bucket + "\"+Inf\"} 38") {
      ASSERT_LT(i + 1, lines.size());
      EXPECT_EQ(lines[i + 1].rfind("zrelay_backend_connect_duration_seconds_sum{" + web, 0), 0u);
    }
  }
}

TEST(PrometheusTextTest, HistogramCountIsItsInfBucket) {
  // Read while workers observe, a snapshot's count can trail its buckets:
  // the exposition's _count must still equal its +Inf bucket.
  MetricsSnapshot snapshot;
  snapshot.listeners.resize(1);
  snapshot.listeners[0].name = "web";
  BackendMetrics backend;
  backend.address = "10.0.0.5:9000";
  backend.connect_seconds.bounds_seconds = {0.001};
  backend.connect_seconds.counts = {4, 1};
  backend.connect_seconds.count = 4;
  snapshot.listeners[0].backends = {backend};
  ExpectLines(PrometheusText(snapshot, 0), {
                                               "zrelay_backend_connect_duration_seconds_bucket{"
                                               "listener=\"web\",backend=\"10.0.0.5:9000\","
                                               "le=\"0.001\"} 4",
                                               "zrelay_backend_connect_duration_seconds_bucket{"
                                               "listener=\"web\",backend=\"10.0.0.5:9000\","
                                               "le=\"+Inf\"} 5",
                                               "zrelay_backend_connect_duration_seconds_count{"
                                               "listener=\"web\",backend=\"10.0.0.5:9000\"} 5",
                                           });
}

TEST(PrometheusTextTest, RouteEndpointsHaveARouteLabel) {
  // The same address in the listener's own pool and in a route's pool:
  // two series, told apart by the route label.
  MetricsSnapshot snapshot;
  snapshot.listeners.resize(1);
  snapshot.listeners[0].name = "tls";
  BackendMetrics own;
  own.address = "10.0.0.5:9000";
  own.connects_total = 3;
  BackendMetrics routed = own;
  routed.route = "api";
  routed.connects_total = 7;
  snapshot.listeners[0].backends = {own, routed};
  ExpectLines(PrometheusText(snapshot, 0),
              {
                  "zrelay_backend_connects_total{listener=\"tls\",backend=\"10.0.0.5:9000\"} 3",
                  "zrelay_backend_connects_total{listener=\"tls\",backend=\"10.0.0.5:9000\","
                  "route=\"api\"} 7",
              });
}

TEST(PrometheusTextTest, EscapesLabelValues) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  std::string text = PrometheusText(Snapshot(), 0);
  ExpectLines(text,
              {
                  "zrelay_listener_connections_accepted_total{listener=\"a\\\\b\\\"c\\nd\"} 0",
                  "zrelay_backend_health_check_down{listener=\"a\\\\b\\\"c\\nd\",backend=\"unix:/"
                  "run/app.sock\"}"
                  " 1",
              });
}

TEST(PrometheusTextTest, WorkersAndDraining) {
  MetricsSnapshot snapshot = Snapshot();
  snapshot.draining = true;
  ExpectLines(PrometheusText(snapshot, 0),
              {
                  "zrelay_draining 1",
                  "zrelay_worker_pairs_open{worker=\"0\"} 2",
                  "zrelay_worker_pairs_open{worker=\"1\"} 1",
                  "zrelay_worker_pipes_in_use{worker=\"0\"} 4",
                  "zrelay_worker_pipes_pooled{worker=\"0\"} 12",
                  "zrelay_worker_pipe_pool_exhausted_total{worker=\"0\"} 1",
                  "zrelay_worker_buffers_in_use{worker=\"0\"} 2",
                  "zrelay_worker_buffers_pooled{worker=\"0\"} 6",
                  "zrelay_worker_splice_switches_total{worker=\"0\"} 9",
                  "zrelay_worker_splice_switches_total{worker=\"1\"} 0",
              });
}

// Each family once: HELP, then TYPE, then only its own series; counters
// end in _total.
TEST(PrometheusTextTest, FamiliesAreWholeAndNamedByType) {
  std::vector<std::string> lines = Lines(PrometheusText(Snapshot(), 0));
  std::set<std::string> seen;
  std::string family;
  std::string type;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (line.rfind("# HELP ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(seen.insert(family).second) << "family twice: " << family;
      EXPECT_EQ(family.rfind("zrelay_", 0), 0u) << family;
      ASSERT_LT(i + 1, lines.size());
      const std::string type_prefix = "# TYPE " + family + " ";
      ASSERT_EQ(lines[i + 1].rfind(type_prefix, 0), 0u) << lines[i + 1];
      type = lines[i + 1].substr(type_prefix.size());
      if (type == "counter") {
        EXPECT_TRUE(family.ends_with("_total")) << family;
      }
      ++i;
      continue;
    }
    const std::string name = line.substr(0, line.find_first_of("{ "));
    if (type == "histogram") {
      EXPECT_TRUE(name == family + "_bucket" || name == family + "_sum" ||
                  name == family + "_count")
          << line;
    } else {
      EXPECT_EQ(name, family) << line;
    }
  }
  // What README.md lists: a family added or renamed is a change for every
  // dashboard, so it shows up here.
  EXPECT_EQ(seen, (std::set<std::string>{
                      "zrelay_start_time_seconds",
                      "zrelay_draining",
                      "zrelay_listener_connections_accepted_total",
                      "zrelay_listener_connections_open",
                      "zrelay_listener_max_connections",
                      "zrelay_listener_connections_closed_total",
                      "zrelay_listener_relayed_bytes_total",
                      "zrelay_listener_spliced_bytes_total",
                      "zrelay_listener_copied_bytes_total",
                      "zrelay_listener_tls_handshakes_total",
                      "zrelay_listener_tls_handshake_failures_total",
                      "zrelay_listener_backend_connect_failures_total",
                      "zrelay_listener_backend_retries_total",
                      "zrelay_listener_no_healthy_backend_total",
                      "zrelay_listener_accept_pauses_total",
                      "zrelay_listener_info",
                      "zrelay_listener_udp_datagrams_total",
                      "zrelay_listener_udp_drops_total",
                      "zrelay_listener_udp_backend_unreachable_total",
                      "zrelay_backend_up",
                      "zrelay_backend_health_check_down",
                      "zrelay_backend_ejected",
                      "zrelay_backend_connections_open",
                      "zrelay_backend_connects_total",
                      "zrelay_backend_connect_failures_total",
                      "zrelay_backend_connect_duration_seconds",
                      "zrelay_worker_pairs_open",
                      "zrelay_worker_pipes_in_use",
                      "zrelay_worker_pipes_pooled",
                      "zrelay_worker_pipe_pool_exhausted_total",
                      "zrelay_worker_buffers_in_use",
                      "zrelay_worker_buffers_pooled",
                      "zrelay_worker_splice_switches_total",
                  }));
}

TEST(PrometheusTextTest, PromtoolAcceptsIt) {
  Status checked = testing::PromtoolCheckMetrics(PrometheusText(Snapshot(), 1764558131.25));
  EXPECT_TRUE(checked.ok()) << checked.error().message();
}

TEST(PrometheusTextTest, PromtoolAcceptsAnEngineWithNothingYet) {
  std::string text = PrometheusText(MetricsSnapshot{}, 0);
  EXPECT_NE(text.find("# TYPE zrelay_listener_connections_accepted_total counter\n"),
            std::string::npos);
  Status checked = testing::PromtoolCheckMetrics(text);
  EXPECT_TRUE(checked.ok()) << checked.error().message();
}

}  // namespace
}  // namespace zrelay
