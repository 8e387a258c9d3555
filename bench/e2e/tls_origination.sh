#!/usr/bin/env bash
# TLS origination side by side: a plain client -> relay -> TLS backend.
#
# The backend is nginx stream terminating TLS 1.3 in front of a zrelay-load
# sink (so every relay talks to the same TLS server); the relays are zrelayd
# (--backend-tls), HAProxy (`server ... ssl`) and stunnel (client mode).
# For each relay, in alternating rounds: bulk upload Gbit/s with relay CPU
# s/GB, and short connections per second (one TLS handshake each) with relay
# CPU us per connection. Loopback only; every process started here is
# stopped by PID. Usage: bench/e2e/tls_origination.sh [rounds] [seconds]
# (bench/compare does not run this scenario yet.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
rounds="${1:-3}"
seconds="${2:-4}"

bazel build -c opt //tools:zrelayd //tools/load:zrelay-load >/dev/null 2>&1
bin="$(bazel info -c opt bazel-bin 2>/dev/null)"
zrelayd="$bin/tools/zrelayd"
load="$bin/tools/load/zrelay-load"
work="$(mktemp -d -t zrelay-orig.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
sink_port=23101 tls_port=23102 relay_port=23103

"$load" backend --listen "127.0.0.1:$sink_port" --mode fixed --req 128 --resp 128 --quiet \
  --duration 3600 >/dev/null 2>&1 &
pids+=($!)
cat >"$work/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
daemon off;
events { worker_connections 8192; }
stream {
  server {
    listen 127.0.0.1:$tls_port ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.3;
    proxy_pass 127.0.0.1:$sink_port;
  }
}
CONF
nginx -c "$work/nginx.conf" &
pids+=($!)

cat >"$work/haproxy.cfg" <<CONF
global
  nbthread 2
  maxconn 6000
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
listen origin
  bind 127.0.0.1:$relay_port
  server tls 127.0.0.1:$tls_port ssl verify none ssl-min-ver TLSv1.3
CONF
cat >"$work/stunnel.conf" <<CONF
foreground = yes
pid =
[origin]
client = yes
accept = 127.0.0.1:$relay_port
connect = 127.0.0.1:$tls_port
sslVersionMin = TLSv1.3
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
CONF

cpu_ticks() {  # utime+stime+cutime+cstime of a process
  awk '{print $14+$15+$16+$17}' "/proc/$1/stat"
}
start_relay() {
  case "$1" in
    zrelayd) "$zrelayd" --listen "127.0.0.1:$relay_port" --backend "127.0.0.1:$tls_port" \
               --backend-tls --backend-insecure --workers 2 --drain-grace 100ms 2>/dev/null & ;;
    haproxy) haproxy -db -f "$work/haproxy.cfg" >/dev/null 2>&1 & ;;
    stunnel) stunnel "$work/stunnel.conf" >/dev/null 2>&1 & ;;
  esac
  relay_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$relay_port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "relay $1 did not start" >&2
  return 1
}
stop_relay() { kill "$relay_pid"; wait "$relay_pid" 2>/dev/null || true; }
tck=$(getconf CLK_TCK)

echo "relay,round,scenario,rate,unit,relay_cpu_s,cpu_per_unit" >"$work/runs.csv"
relays=(zrelayd haproxy stunnel)
for ((r = 0; r < rounds; r++)); do
  for ((i = 0; i < ${#relays[@]}; i++)); do
    relay="${relays[$(((i + r) % ${#relays[@]}))]}"
    # bulk upload: Gbit/s, relay CPU s per GB
    start_relay "$relay"
    c0=$(cpu_ticks "$relay_pid")
    out=$("$load" bulk --target "127.0.0.1:$relay_port" --streams 1 --duration "$seconds" --json --quiet 2>/dev/null || true)
    c1=$(cpu_ticks "$relay_pid")
    stop_relay
    python3 - "$relay" "$r" "$out" "$c0" "$c1" "$tck" >>"$work/runs.csv" <<'PY'
import json, sys
relay, r, out, c0, c1, tck = sys.argv[1:]
d = json.loads(out) if out.strip() else {}
cpu = (int(c1) - int(c0)) / int(tck)
gb = d.get("bytes", 0) / 1e9
print(f"{relay},{r},bulk,{d.get('gbit_per_s', 0):.2f},Gbit/s,{cpu:.2f},{cpu / gb if gb else 0:.3f}")
PY
    # handshakes: one short connection (one TLS handshake to the backend) each
    start_relay "$relay"
    c0=$(cpu_ticks "$relay_pid")
    out=$("$load" connect --target "127.0.0.1:$relay_port" --conns 20 --duration "$seconds" --req 128 --resp 128 --json --quiet 2>/dev/null || true)
    c1=$(cpu_ticks "$relay_pid")
    stop_relay
    python3 - "$relay" "$r" "$out" "$c0" "$c1" "$tck" "$seconds" >>"$work/runs.csv" <<'PY'
import json, sys
relay, r, out, c0, c1, tck, secs = sys.argv[1:]
d = json.loads(out) if out.strip() else {}
cpu = (int(c1) - int(c0)) / int(tck)
rate = d.get("conns_per_s", 0)
conns = rate * float(d.get("seconds", secs))
print(f"{relay},{r},handshakes,{rate:.0f},conn/s,{cpu:.2f},{cpu / conns * 1e6 if conns else 0:.0f}")
PY
  done
done
python3 - "$work/runs.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("| relay | bulk Gbit/s | CPU s/GB | handshakes/s | CPU us/handshake |")
print("|---|--:|--:|--:|--:|")
for relay in ("zrelayd", "haproxy", "stunnel"):
    def med(scenario, key):
        vals = [float(x[key]) for x in rows if x["relay"] == relay and x["scenario"] == scenario]
        return statistics.median(vals) if vals else 0
    print(f"| {relay} | {med('bulk','rate'):.2f} | {med('bulk','cpu_per_unit'):.3f} | "
          f"{med('handshakes','rate'):.0f} | {med('handshakes','cpu_per_unit'):.0f} |")
PY
