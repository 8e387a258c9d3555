// WorkerCounters: one worker's counters, written by that worker alone and
// readable from any thread (Engine::Stats and Engine::Metrics sum them).
// The fields are WorkerStats' own, minus what the pools and the engine
// listeners count themselves (Worker::Snapshot adds those).
#pragma once

#include "relay/relaxed_counter.h"

namespace zrelay {

// Its own cache lines: readers on other threads must not bounce the lines
// the worker writes on every pump run into those of its neighbours.
struct alignas(64) WorkerCounters {
  RelaxedCounter pairs_open;
  RelaxedCounter connections_open;  // Connections in their protocol phase
  RelaxedCounter pairs_closed;
  RelaxedCounter accepted;
  RelaxedCounter connect_failures;
  RelaxedCounter bytes_a_to_b;
  RelaxedCounter bytes_b_to_a;
  RelaxedCounter bytes_spliced;
  RelaxedCounter bytes_copied;
  RelaxedCounter pipe_pool_exhausted;
  RelaxedCounter splice_switches;
  RelaxedCounter backend_fd_exhausted;
  RelaxedCounter backend_retries;
  RelaxedCounter no_healthy_backend;
  // UDP listeners' flows (relay.h UdpStats).
  RelaxedCounter udp_flows_open;
  RelaxedCounter udp_flows_created;
  RelaxedCounter udp_datagrams_client_to_backend;
  RelaxedCounter udp_datagrams_backend_to_client;
  RelaxedCounter udp_bytes_client_to_backend;
  RelaxedCounter udp_bytes_backend_to_client;
  RelaxedCounter udp_receive_drops;
  RelaxedCounter udp_flow_cap_drops;
  RelaxedCounter udp_backend_unreachable;
  RelaxedCounter udp_send_drops;
};

}  // namespace zrelay
