#!/usr/bin/env bash
# Builds zrelay and runs its demo: a backend, zrelayd in front of it, data
# pushed through in splice and in copy mode, then throughput and CPU per GiB
# for each. Arguments go to the demo:  bash tools/demo.sh [GiB per mode]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash tools/setup.sh
exec bazel run -c opt //tools:demo -- "$@"
