#!/bin/sh
# Runs every benchmark binary given as an argument once, briefly: a crash or
# a hang fails the test, the figures are ignored.
set -eu
for bench in "$@"; do
  echo "== $bench"
  "$bench" --benchmark_min_time=0.001 --benchmark_repetitions=1 >/dev/null
done
echo "all benchmarks ran"
