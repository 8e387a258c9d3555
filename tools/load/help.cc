// zrelay-load --help.
#include <string>

#include "tools/load/config.h"

namespace zrelay::load {

std::string HelpText() {
  return R"(zrelay-load: load generator and test backend for zrelay (built on zrelay's engine)

usage:
  zrelay-load bulk    --target ADDR [--streams N] [--duration S | --bytes SIZE] [--chunk SIZE]
                      [--verify] [--direction up|down|both]
  zrelay-load rr      --target ADDR [--conns N] [--req SIZE] [--resp SIZE]
                      [--duration S | --requests N]
  zrelay-load connect --target ADDR [--conns N] [--duration S | --count N]
                      [--req SIZE] [--resp SIZE]
  zrelay-load idle    --target ADDR --pairs N [--hold S] [--relay-pid PID]
                      [--req SIZE] [--resp SIZE]
  zrelay-load udp     --target ADDR [--flows N] [--size SIZE] [--reply-timeout S]
                      [--duration S | --requests N] [--timeout S]
  zrelay-load backend --listen ADDR [--mode sink|verify|echo|fixed|source]
                      [--req SIZE] [--resp SIZE] [--duration S]
  zrelay-load backend --udp --listen ADDR [--duration S]
  common: [--workers N] [--json] [--quiet]
  clients: [--tls] [--tls-ca FILE | --tls-insecure] [--sni NAME]
           [--timeout S] [--connect-timeout S] [--io-timeout S]

modes:
  bulk     N streams move bytes for a time (default 10 s) or a volume (--bytes, split
           over the streams); reports Gbit/s and GiB moved.
             up    client -> backend (backend --mode sink, or verify with --verify)
             down  backend -> client (backend --mode source)
             both  both ways at once (backend --mode echo)
           --verify sends a stream of a 16-byte header and a keyed xorshift pattern; every
           byte is checked at its offset (up: by backend --mode verify, which reports back
           on the half-close; down/both: by the client). Any mismatch fails the run.
           --chunk: bytes per write (default 64k). Up/both end with a half-close and wait
           for the backend's EOF, so the time includes delivery.
  rr       --conns connections (default 10), each: send --req bytes, wait for --resp bytes
           (default 128 each), repeat. Reports requests/s and latency p50/p90/p99/p99.9
           from a log-linear histogram (2 significant digits, 1 ns..60 s). Use backend
           --mode fixed with the same --req/--resp (or echo when they are equal).
  connect  --conns connect slots in flight (default 10), each: connect, send --req,
           read --resp, close, repeat; reports connections/s and connect+exchange latency;
           errors are counted by kind: refused, reset, timeout, other. --req/--resp 0: just
           connect and close.
  idle     open --pairs connections (through a relay) and hold them idle for --hold
           (default 10 s). Each first does one exchange of --req/--resp bytes (default
           1/1, for backend --mode echo; 0/0 to skip) so the relay's backend leg is known
           to be up. With --relay-pid, reads the relay's VmRSS (/proc/PID/status) and fd
           count (/proc/PID/fd) before opening and while holding, and reports KiB and fds
           per idle pair.
           fds: this process may hold at most 20000 fds here (hard RLIMIT_NOFILE; the soft
           limit is raised to it at start), and a relay holds two per pair, so run the
           backend, the relay and this client as separate processes: up to ~9000 pairs is
           realistic.
  udp      --flows UDP sockets (default 10), each connected to the target: send a
           datagram of --size bytes (default 64, 1 to 65507), wait for the reply (the
           same bytes: use backend --udp), repeat. A reply must be byte-exact: each
           datagram carries its flow's key and sequence number (from 16 bytes up) and a
           keyed pattern that differs for every request. No reply within --reply-timeout
           (default 1 s) is a loss, and the flow sends its next request. Reports
           requests/s (answered), loss (count, and rate over the requests that ended),
           late replies (to an earlier request, after its timeout), mismatched datagrams
           (another flow's, or corrupt: the request still waits for its own reply),
           ICMP unreachables, latency p50/p90/p99/p99.9 and this process's CPU per
           request. A request still waiting when the time is up is not counted.
  backend  listen on ADDR (one SO_REUSEPORT socket per worker) and serve every
           connection:
             sink    read and discard
             verify  check a bulk --verify stream; answer the half-close with a report
             echo    send back what arrives (default)
             fixed   for every --req bytes read, send --resp bytes
             source  send a bulk stream (header + pattern) until the client closes
           Prints "listening on ADDR" on stdout first (use port 0 to let the kernel
           pick), a progress line per busy second on stderr, and totals at exit. Serves
           for --duration (default 600 s) or until SIGINT/SIGTERM.
           --udp: bind a UDP socket per worker (SO_REUSEPORT) instead and send every
           datagram back to its sender, byte for byte (--mode echo only); datagrams are
           read and sent in batches (recvmmsg/sendmmsg).

values:
  ADDR      127.0.0.1:9000, [::1]:9000, localhost:9000, :9000, unix:/path
  SIZE      bytes, or with a binary suffix: 64k, 1M, 1.5G, 2T (k = 1024; "64KiB" too)
  S         seconds: 10, 2.5s, 500ms, 2m, 1h
  N         a whole number (10k = 10000)
  booleans  --verify, --tls, --tls-insecure, --json, --quiet: bare means true;
            --flag=VALUE takes true, false, yes, no, on, off, 1 or 0

limits and timing:
  Every client run ends: timed runs after --duration (default 10 s), counted runs
  (--bytes, --requests, --count) when done, and any run at --timeout, the hard cap
  (default: duration + 15 s; counted runs 300 s; idle: hold + 60 s; at most 24 h).
  --connect-timeout (default 5 s) bounds each connect; --io-timeout (default 10 s) bounds
  each wait for progress (a response, a stalled stream). Connections: at most 19000, and
  at most 256 connects in flight per worker. --workers: default one per CPU.
  A progress line goes to stderr once a second on runs longer than ~3 s (--quiet: none).

output:
  a table, or with --json one JSON object on one line, keys: mode, complete, seconds,
  errors, errors_refused, errors_reset, errors_timeout, errors_other, first_error,
  bytes_up, bytes_down; bulk: bytes, gib, gbit_per_s, mismatches; rr: requests, rps;
  connect: connections, conns_per_s; rr/connect/udp: p50_us, p90_us, p99_us, p999_us,
  min_us, mean_us, max_us; idle: pairs, ready, dropped, kib_per_pair, fds_per_pair,
  rss_*_kib, fds_*; udp: flows, size, requests, rps, sent, lost, loss_rate, late,
  mismatches, unreachable, datagrams, client_cpu_s, client_cpu_us_per_req.

TLS (--tls, client modes): each connection does a TLS handshake (counted in connect's
  latency) through zrelay's ssl/ layer. The server certificate is verified against
  --tls-ca (else the system trust store) unless --tls-insecure; the name checked is
  --sni (also sent as SNI), else the --target host name (also sent), else the target's
  IP (against the certificate's IP SANs). Handshake failures are counted as errors.
  The backend serves plain TCP only: put a TLS-terminating relay in front of it.

exit status: 0 clean; 1 the run had errors, mismatches, dropped pairs or did not
complete (udp: also when no request was answered; losses alone are not a failure);
2 usage or setup error (the message names the flag).
)";
}

}  // namespace zrelay::load
