#!/usr/bin/env bash
# Builds zrelay and runs its demo: a backend, zrelayd in front of it, data
# pushed through in splice and in copy mode, then throughput and CPU per GiB
# for each. Arguments go to the demo:  bash tools/demo.sh [DEMO ARGS...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash tools/setup.sh

# //tools:demo is still being written. Until it exists, say so plainly rather
# than show Bazel's "no such package" error, or pretend with something else.
not_there_yet() {
  cat >&2 <<'MSG'
tools/demo.sh: the demo target //tools:demo does not exist yet.
  It is being built (a backend, zrelayd in front, splice vs copy with
  throughput and CPU per GiB). Meanwhile `bash tools/test.sh` runs the tests.
MSG
  exit 1
}
[[ -f tools/BUILD || -f tools/BUILD.bazel ]] || not_there_yet
if ! query_err="$(bazel query //tools:demo 2>&1 >/dev/null)"; then
  # Only "not declared" alone means missing; a broken tools/BUILD also ends
  # in "no such target", after the error that matters.
  errors="$(grep -c '^ERROR:' <<<"$query_err" || true)"
  if [[ "$errors" == 1 && "$query_err" == *"no such target '//tools:demo'"* ]] ||
     [[ "$errors" == 1 && "$query_err" == *"no such package 'tools'"* ]]; then
    not_there_yet
  fi
  echo "$query_err" >&2
  echo "tools/demo.sh: 'bazel query //tools:demo' failed (above)." >&2
  exit 1
fi

exec bazel run -c opt //tools:demo -- "$@"
