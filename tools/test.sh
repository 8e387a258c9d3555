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

# Under ThreadSanitizer, tests (and the zrelayd processes they start) read
# tests/tsan.supp: races inside OpenSSL, which is not built with TSan, are
# not zrelay's. The path must be absolute: tests run in their own directory.
extra=()
for arg in "$@"; do
  if [[ "$arg" == --config=tsan ]]; then
    extra=(--test_env="TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp")
  fi
done

# exec: bazel's exit code is ours, and a signal sent to this script (Ctrl-C,
# CI's timeout) reaches the bazel client, which then cancels cleanly.
exec bazel test "$@" ${extra[@]+"${extra[@]}"} "${targets[@]}"
