#!/usr/bin/env bash
# Builds the libFuzzer binary for one of zrelay's parsers and fuzzes it:
#
#   bash tools/fuzz.sh client_hello        # 60 seconds
#   bash tools/fuzz.sh address 300         # 300 seconds
#
# Targets are tests/fuzz/<target>_fuzz.cc (client_hello, proxy_protocol,
# address, config, values).
# The binary is built with clang-14 and -fsanitize=fuzzer,address,undefined
# (.bazelrc's `fuzz` config) in a Bazel output base of its own, so the
# default one keeps its g++ build. It runs on a copy of
# tests/fuzz/corpus/<target>/ (the seeds in the tree are never changed);
# the inputs it adds stay in that copy, and a crashing input is written to
# the crash directory printed at the start and at the end, with the command
# that replays it. A crash worth keeping goes into the corpus, so that
# //tests/fuzz:<target>_fuzz_test replays it in every test run.
#
# Needs Debian's clang (clang-14) and libclang-rt-14-dev (libFuzzer and the
# sanitizer runtimes); it names what is missing and stops.
# Exit status: 0 no crash, 1 the fuzzer found a crash, 2 usage or setup error.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

targets=$(cd tests/fuzz && ls -- *_fuzz.cc | sed 's/_fuzz\.cc$//' | tr '\n' ' ')
usage() {
  echo "usage: bash tools/fuzz.sh TARGET [SECONDS]   (TARGET: ${targets% }; SECONDS: 60)" >&2
  exit 2
}
(($# >= 1 && $# <= 2)) || usage
target=$1
seconds=${2:-60}
[[ -f tests/fuzz/${target}_fuzz.cc ]] || usage
[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage

missing=()
command -v clang-14 >/dev/null || missing+=(clang)
runtime=$(clang-14 -print-file-name="libclang_rt.fuzzer-$(uname -m).a" 2>/dev/null || true)
[[ -f $runtime ]] || missing+=(libclang-rt-14-dev)
if ((${#missing[@]} > 0)); then
  echo "tools/fuzz.sh needs clang-14 and libFuzzer; missing Debian packages: ${missing[*]}" >&2
  echo "install them (as root): bash tools/setup.sh --fuzz" >&2
  exit 2
fi

# One output base per checkout, next to Bazel's default ones.
output_base=$HOME/.cache/bazel/zrelay-fuzz-$(pwd | md5sum | cut -c1-12)
bazel_fuzz=(bazel --output_base="$output_base" --max_idle_secs=900)
"${bazel_fuzz[@]}" build --config=fuzz --experimental_convenience_symlinks=ignore \
  "//tests/fuzz:${target}_fuzzer"
binary=$("${bazel_fuzz[@]}" info --config=fuzz bazel-bin 2>/dev/null)/tests/fuzz/${target}_fuzzer

work=$(mktemp -d -t "zrelay-fuzz-${target}.XXXXXX")
mkdir "$work/corpus" "$work/crashes"
cp "tests/fuzz/corpus/$target/"* "$work/corpus/"
echo "fuzzing $target for ${seconds}s; corpus copy: $work/corpus; crashes go to $work/crashes/"

status=0
# -timeout: one parse taking 10 s is a hang, reported like a crash.
"$binary" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$work/crashes/" "$work/corpus" || status=$?

crashes=("$work/crashes/"*)
if [[ -e ${crashes[0]} ]]; then
  echo "fuzz.sh: ${#crashes[@]} crashing input(s) in $work/crashes/; replay one with:"
  echo "  $binary ${crashes[0]}"
  exit 1
fi
if ((status != 0)); then
  echo "fuzz.sh: the fuzzer exited with status $status" >&2
  exit 1
fi
echo "fuzz.sh: no crash in ${seconds}s; corpus grew to $(ls "$work/corpus" | wc -l) inputs in $work/corpus"
