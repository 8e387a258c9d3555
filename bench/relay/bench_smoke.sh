#!/bin/sh
# Runs a benchmark binary once with a tiny minimum time and fails if it
# fails or reports an error (SkipWithError prints "ERROR OCCURRED").
set -eu
bench="$1"
out="$("$bench" --benchmark_min_time=0.01 2>&1)" || { echo "$out"; echo "FAILED: $bench exited $?"; exit 1; }
echo "$out"
if echo "$out" | grep -q "ERROR OCCURRED"; then
  echo "FAILED: a benchmark reported an error"
  exit 1
fi
# Every benchmark must have produced a line.
for name in BM_Relay/splice BM_Relay/copy BM_RingBufferStream BM_RingBufferIovecs; do
  echo "$out" | grep -q "^$name" || { echo "FAILED: no result for $name"; exit 1; }
done
