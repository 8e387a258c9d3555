#!/usr/bin/env bash
# Installs the Debian 12 packages zrelay needs, and only the missing ones.
#
#   bash tools/setup.sh           build + test dependencies
#   bash tools/setup.sh --bench   also the benchmark peers (iperf3, wrk, ...)
#   bash tools/setup.sh --lint    also clang-format and clang-tidy
#   bash tools/setup.sh --fuzz    also clang and libFuzzer (tools/fuzz.sh)
#
# Safe to run any number of times: when nothing is missing it prints nothing,
# touches nothing and needs no root, so tools/test.sh and tools/demo.sh run it
# every time. When something is missing it needs root, runs `apt-get update`
# once and installs just that.
#
# Daemons: Debian starts a service as soon as its package is installed
# (haproxy and nginx on port 80, redis on 6379, ...). zrelay never uses those:
# tests and benchmarks start their own peers on loopback ports. While
# installing, a temporary /usr/sbin/policy-rc.d answers 101 ("action
# forbidden") so no service starts; it is removed afterwards, even on failure,
# and a policy-rc.d that was already there is put back as it was.
set -euo pipefail

readonly BUILD_PKGS=(
  bazel-bootstrap   # Bazel 4.2.3
  bazel-rules-java  # /usr/share/bazel/rules/java, @rules_java in WORKSPACE
  bazel-platforms   # /usr/share/bazel/tools/platforms, @platforms in WORKSPACE
  g++
  libgtest-dev libgmock-dev  # @system_gtest
  libbenchmark-dev           # @system_benchmark
  libssl-dev                 # @system_openssl
  libcli11-dev               # @system_cli11 (header-only): zrelayd and zrelay-load command lines
  libtomlplusplus-dev        # @system_tomlplusplus (header-only): zrelayd's config file
  libsystemd-dev             # @system_libsystemd: zrelayd's sd_notify (Type=notify)
  liburing-dev               # @system_liburing: the io_uring data path (engine/uring_ring)
  openssl                    # tests make certificates and talk to s_client/s_server
)
readonly TEST_PKGS=(
  haproxy socat  # real peers in integration tests
  nginx libnginx-mod-stream  # nginx stream: PROXY protocol and TLS peers in tests, and the bench
  prometheus     # promtool: tests check what zrelayd's /metrics serves with `promtool check metrics`
  dnsmasq bind9-dnsutils  # a real DNS server behind a UDP listener, and dig to query it through zrelayd
)
readonly BENCH_PKGS=(
  iperf3 wrk redis-server    # load generators and a request/response backend
  stunnel4                   # TLS peer
  gnuplot-nox                # plots in bench/results/
  linux-perf                 # perf stat / perf record
  python3                    # bench/compare and bench/e2e are Python 3
)
readonly LINT_PKGS=(clang-format clang-tidy)
readonly FUZZ_PKGS=(clang libclang-rt-14-dev)  # tools/fuzz.sh: clang-14, libFuzzer, sanitizers

# Directories WORKSPACE points its local_repository entries at.
readonly WORKSPACE_DIRS=(
  "/usr/share/bazel/rules/java:bazel-rules-java:@rules_java"
  "/usr/share/bazel/tools/platforms:bazel-platforms:@platforms"
)

usage() {
  cat <<'EOF'
usage: bash tools/setup.sh [--bench] [--lint] [--fuzz]
  Installs the missing Debian packages for building and testing zrelay.
  --bench  also the benchmark peers: iperf3 stunnel4 wrk gnuplot-nox linux-perf
           redis-server python3
  --lint   also clang-format and clang-tidy
  --fuzz   also clang and libclang-rt-14-dev, for tools/fuzz.sh
EOF
}

say() { echo "tools/setup.sh: $*"; }
die() { echo "tools/setup.sh: error: $*" >&2; exit 1; }

wanted=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}")
for arg in "$@"; do
  case "$arg" in
    --bench) wanted+=("${BENCH_PKGS[@]}") ;;
    --lint) wanted+=("${LINT_PKGS[@]}") ;;
    --fuzz) wanted+=("${FUZZ_PKGS[@]}") ;;
    -h|--help) usage; exit 0 ;;
    *) echo "tools/setup.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

installed() {
  # "install ok installed" (or "hold ok installed"); anything else, including
  # "deinstall ok config-files" and unknown packages, means missing.
  local status
  status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" || return 1
  [[ "$status" == *" ok installed" ]]
}

command -v dpkg-query >/dev/null 2>&1 ||
  die "dpkg-query not found: this script installs Debian packages (Debian 12 'bookworm')."

missing=()
for pkg in "${wanted[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done

# --- policy-rc.d: keep services from starting while apt installs ------------
readonly POLICY=/usr/sbin/policy-rc.d
readonly POLICY_MARK="# written by zrelay tools/setup.sh; removed when it finishes"
policy_saved=""
policy_ours=false

block_services() {
  if [[ -e "$POLICY" || -L "$POLICY" ]]; then
    if grep -qF "$POLICY_MARK" "$POLICY" 2>/dev/null; then
      : # left over from a run that was killed: ours, replace it and remove it later
    else
      policy_saved="$(mktemp "${POLICY}.zrelay-saved.XXXXXX")"
      mv -f "$POLICY" "$policy_saved"
    fi
  fi
  policy_ours=true
  printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARK" >"$POLICY"
  chmod 755 "$POLICY"
}

unblock_services() {
  if [[ "$policy_ours" == true ]]; then
    rm -f "$POLICY"
    if [[ -n "$policy_saved" ]]; then
      mv -f "$policy_saved" "$POLICY"
    fi
    policy_ours=false
  fi
}

if ((${#missing[@]} > 0)); then
  if [[ "$(id -u)" -ne 0 ]]; then
    die "missing Debian packages: ${missing[*]}
  Installing them needs root. Run as root (or: sudo bash tools/setup.sh $*),
  or install them yourself: apt-get install ${missing[*]}"
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; missing packages: ${missing[*]}"

  say "installing missing packages: ${missing[*]}"
  trap unblock_services EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  block_services

  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get update -q; then
    say "warning: 'apt-get update' failed; trying with the package lists already here"
  fi
  apt-get install -y -q "${missing[@]}" ||
    die "apt-get install failed for: ${missing[*]}"

  unblock_services
  trap - EXIT INT TERM

  still=()
  for pkg in "${missing[@]}"; do
    installed "$pkg" || still+=("$pkg")
  done
  ((${#still[@]} == 0)) || die "still not installed after apt-get: ${still[*]}"
  say "installed: ${missing[*]}"
fi

# --- what WORKSPACE depends on ---------------------------------------------
# WORKSPACE reads @rules_java and @platforms from fixed Debian paths; when a
# package is installed but the path is not there (a different Debian release
# or a changed package layout), Bazel's own error is far from the cause.
for entry in "${WORKSPACE_DIRS[@]}"; do
  IFS=: read -r dir pkg repo <<<"$entry"
  [[ -d "$dir" ]] || die "$dir does not exist, but WORKSPACE reads $repo from there.
  It should come with the Debian package $pkg (Debian 12 'bookworm'). Check with:
    dpkg -L $pkg | head
  and fix the path in WORKSPACE if the package moved it."
done
command -v bazel >/dev/null 2>&1 || die "'bazel' is not on PATH (package bazel-bootstrap installs /usr/bin/bazel)."
exit 0
