#!/usr/bin/env bash
# Runs every Google Benchmark binary of zrelay, one after the other:
#   bazel run -c opt //bench:micro                     # everything
#   bazel run -c opt //bench:micro -- --benchmark_filter=Arm
# Arguments go to every binary. Numbers from a loaded machine mislead: run
# it with nothing else building.
set -euo pipefail
status=0
for binary in engine/timer_wheel_bench engine/event_loop_bench engine/uring_pingpong_bench relay/pump_bench relay/balancer_bench ssl/tls_bench; do
  echo "==== //bench/${binary%/*}:${binary#*/}"
  "bench/$binary" "$@" || status=1
done
exit "$status"
