"""Load generators: iperf3, wrk, zrelay-load, and an in-process idle-pair holder.

Each returns a dict of metrics. Keys used across the harness:
  gbit_per_s, rps, conns_per_s, p50_us, p90_us, p99_us, p999_us,
  bytes (moved through the relay), requests, conns, errors, seconds.
A failed load raises LoadError with a message.
"""

import json
import os
import socket
import time

import procfs
from procs import run_bounded

HERE = os.path.dirname(os.path.abspath(__file__))
WRK_SCRIPT = os.path.join(HERE, "wrk_report.lua")


class LoadError(Exception):
    pass


def iperf3(ctx, port, seconds, streams=1, length=None, log=None):
    """iperf3 client for `seconds`; bytes are what the server received."""
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds),
            "-P", str(streams), "-J", "--connect-timeout", "3000"]
    if length:
        argv += ["-l", str(length)]
    rc, out = run_bounded(argv, seconds + 20, log, cpus=ctx.load_cpus)
    if rc is None:
        raise LoadError(f"iperf3 did not finish within {seconds + 20}s")
    try:
        d = json.loads(out)
    except ValueError:
        raise LoadError(f"iperf3 exit {rc}, no JSON: {out[-300:]!r}")
    if d.get("error"):
        raise LoadError("iperf3: " + d["error"])
    recv = d["end"]["sum_received"]
    sent = d["end"].get("sum_sent", {})
    return {
        "gbit_per_s": recv["bits_per_second"] / 1e9,
        "bytes": recv["bytes"],
        "seconds": recv["seconds"],
        "retransmits": sent.get("retransmits", ""),
    }


def wrk(ctx, url, seconds, conns, threads=2, close=False, log=None):
    """wrk against url; close=True sends `Connection: close` (one connection
    per request, so requests == connections)."""
    argv = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s",
            "--timeout", "3s", "-s", WRK_SCRIPT]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(url)
    rc, out = run_bounded(argv, seconds + 20, log, cpus=ctx.load_cpus)
    if rc is None:
        raise LoadError(f"wrk did not finish within {seconds + 20}s")
    line = next((l for l in out.splitlines() if l.startswith("ZRBENCH ")), None)
    if line is None:
        raise LoadError(f"wrk exit {rc}: {out[-300:]!r}")
    d = json.loads(line[len("ZRBENCH "):])
    secs = d["duration_us"] / 1e6
    errors = sum(d[k] for k in d if k.startswith("err_"))
    if d["requests"] == 0:
        raise LoadError(f"wrk completed no request ({errors} errors)")
    if d["err_status"] > d["requests"] / 100:
        raise LoadError(f"{d['err_status']} of {d['requests']} responses were not 2xx/3xx")
    res = {
        "rps": d["requests"] / secs,
        "requests": d["requests"],
        "bytes": d["bytes"],
        "seconds": secs,
        "errors": errors,
        "p50_us": d["p50_us"], "p90_us": d["p90_us"],
        "p99_us": d["p99_us"], "p999_us": d["p999_us"],
        "gbit_per_s": d["bytes"] * 8 / secs / 1e9,
    }
    if close:
        res["conns"] = d["requests"]
        res["conns_per_s"] = res["rps"]
    return res


def _last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    try:
        return json.loads(text)
    except ValueError:
        return None


def zload(ctx, args, seconds, log=None):
    """zrelay-load MODE ... --json: one JSON object on stdout (keys seconds,
    bytes, requests, rps, connections, conns_per_s, p50_us ..., errors)."""
    rc, out = run_bounded([ctx.zload] + list(args) + ["--json"], seconds + 20, log,
                          cpus=ctx.load_cpus)
    if rc is None:
        raise LoadError(f"zrelay-load did not finish within {seconds + 20}s")
    d = _last_json(out)
    if d is None:
        raise LoadError(f"zrelay-load exit {rc}, no JSON: {out[-300:]!r}")
    if rc != 0 or not d.get("complete", True):
        raise LoadError(f"zrelay-load exit {rc}: {d.get('errors')} errors, "
                        f"first: {d.get('first_error', '')!r}")
    secs = float(d.get("seconds") or seconds)
    res = {k: d[k] for k in ("gbit_per_s", "rps", "conns_per_s", "p50_us", "p90_us",
                             "p99_us", "p999_us") if k in d}
    res["seconds"] = secs
    res["errors"] = d.get("errors", 0)
    if "gbit_per_s" in d:
        res["bytes"] = d.get("bytes") or d.get("bytes_up", 0) + d.get("bytes_down", 0)
    if "rps" in d:
        res["requests"] = d.get("requests", d["rps"] * secs)
    if "conns_per_s" in d:
        res["conns"] = d.get("connections", d["conns_per_s"] * secs)
    return res


def zload_udp(ctx, port, size, flows, seconds, reply_timeout, log=None):
    """zrelay-load udp: `flows` sockets, each one --size datagram in flight,
    for `seconds`. Losses and mismatched replies are measurements, not
    failures (the table shows them); errors, or no request answered at all,
    fail the run."""
    args = ["udp", "--target", f"127.0.0.1:{port}", "--flows", str(flows), "--size", str(size),
            "--duration", str(seconds), "--reply-timeout", reply_timeout, "--json"]
    rc, out = run_bounded([ctx.zload] + args, seconds + 20, log, cpus=ctx.load_cpus)
    if rc is None:
        raise LoadError(f"zrelay-load did not finish within {seconds + 20}s")
    d = _last_json(out)
    if d is None:
        raise LoadError(f"zrelay-load exit {rc}, no JSON: {out[-300:]!r}")
    if d.get("errors") or not d.get("complete", True):
        raise LoadError(f"zrelay-load exit {rc}: {d.get('errors')} errors, "
                        f"first: {d.get('first_error', '')!r}")
    if not d.get("requests"):
        raise LoadError(f"no request answered: {d.get('lost')} lost, {d.get('mismatches')} "
                        f"mismatched, {d.get('unreachable')} ICMP unreachable")
    res = {k: d[k] for k in ("rps", "requests", "p50_us", "p90_us", "p99_us", "p999_us",
                             "datagrams", "lost", "late", "mismatches", "unreachable",
                             "client_cpu_us_per_req") if k in d}
    res["seconds"] = float(d.get("seconds") or seconds)
    res["errors"] = 0
    res["bytes"] = d.get("bytes_up", 0) + d.get("bytes_down", 0)
    res["loss_pct"] = 100.0 * d.get("loss_rate", 0.0)
    return res


# ------------------------------------------------------------- idle pairs

def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise LoadError("connection closed during the ping/pong")
        buf += chunk
    return buf


def idle_pairs(ctx, port, backend, relay_root, pairs, hold, timeout=120.0):
    """Open `pairs` connections through the relay and measure what they cost.

    backend is a listening socket on the relay's backend address. Each pair
    first carries one 16 B ping and one 16 B pong (so buffers a relay takes
    on first data are taken), then idles. RSS/PSS and fds of the relay's
    process tree are read before the first connection and `hold` seconds
    after the last ping/pong; the difference over `pairs` is the per-pair
    cost. The idle sockets are closed before returning.
    """
    rss0, pss0 = procfs.memory_kib(relay_root)
    fds0 = procfs.fd_count(relay_root)
    deadline = time.monotonic() + timeout
    clients, servers = [], []
    ping = b"zrelay-bench-pin"
    backend.settimeout(5.0)
    try:
        for i in range(pairs):
            if time.monotonic() > deadline:
                raise LoadError(f"only {i} of {pairs} pairs within {timeout:.0f}s")
            c = socket.create_connection(("127.0.0.1", port), timeout=5.0)
            clients.append(c)
            c.sendall(ping)
            try:
                b, _ = backend.accept()
            except socket.timeout:
                raise LoadError(f"pair {i}: relay never connected to the backend")
            servers.append(b)
            b.settimeout(5.0)
            b.sendall(_recv_exact(b, len(ping)))
            if _recv_exact(c, len(ping)) != ping:
                raise LoadError(f"pair {i}: pong differs from ping")
        time.sleep(hold)
        rss1, pss1 = procfs.memory_kib(relay_root)
        fds1 = procfs.fd_count(relay_root)
    except (OSError, socket.timeout) as e:
        raise LoadError(f"after {len(servers)} pairs: {e}")
    finally:
        for s in clients + servers:
            s.close()
    return {
        "pairs": pairs,
        "kib_per_pair": (rss1 - rss0) / pairs,
        "pss_kib_per_pair": (pss1 - pss0) / pairs,
        "fds_per_pair": (fds1 - fds0) / pairs,
        "rss_before_kib": rss0, "rss_after_kib": rss1,
    }
