#!/usr/bin/env bash
# Runs zrelay's whole test suite: installs what is missing (tools/setup.sh),
# then `bazel test //...`. Extra arguments go to `bazel test`:
#
#   bash tools/test.sh                        # everything, optimized build
#   bash tools/test.sh --config=asan          # under ASan + UBSan
#   bash tools/test.sh --config=tsan
#   bash tools/test.sh //tests/engine/...     # only these targets
#
# When an argument is a target pattern (starts with // or @), those targets
# replace //... . The exit code is bazel's: 0 all passed, 1 build failed,
# 3 some test failed, 4 no test targets, 8 interrupted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash tools/setup.sh

targets=(//...)
for arg in "$@"; do
  case "$arg" in
    //* | @*) targets=() ; break ;;
  esac
done

# exec: bazel's exit code is ours, and a signal sent to this script (Ctrl-C,
# CI's timeout) reaches the bazel client, which then cancels cleanly.
exec bazel test "$@" "${targets[@]}"
