"""Scenarios: what load runs, against which backend, and what it reports.

A scenario starts its long-lived backend in setup(), may start a per-run
backend in prepare() (iperf3 serves one test per server), and runs its load
in load(). The relay under test sits between load and backend.
"""

import collections
import os
import socket
import time

import loads
import peers
from loads import LoadError


class Scenario:
    name = ""
    group = ""           # what --only selects
    tls = False          # relays must terminate TLS
    udp = False          # the load is UDP: relays listen on a UDP port
    metric = ""          # headline metric (higher is better)
    cpu_per = None       # "gb" | "req" | "conn" | "dgram": how relay CPU is normalized
    needs_relay = False  # no meaning without a relay (idle)
    opt_in = False       # runs only when --only names it (adds minutes to a full run)
    needs_zload = False
    backend_ports = 1    # backend ports a relay may forward to (balancing relays: > 1)
    reference = ("haproxy-splice",)  # ratio column: best of these relays
    title = ""
    measures = ""

    def __init__(self, ctx):
        self.ctx = ctx
        self.backends = []

    def params(self):
        return [None]

    def accepts(self, relay):
        if relay.tls != self.tls or relay.backends > self.backend_ports:
            return False
        if relay.groups and self.group not in relay.groups:
            return False
        return not (self.needs_relay and relay.direct)

    def available(self):
        if self.needs_zload and not self.ctx.zload:
            return self.ctx.zload_missing or "zrelay-load not built"
        return None

    def setup(self, logdir):
        pass

    def teardown(self):
        for b in self.backends:
            b.stop()
        self.backends = []

    def prepare(self, param, rundir, log):
        """Returns the backend port the relay forwards to."""
        raise NotImplementedError

    def direct_port(self, backend_port):
        return backend_port

    def relay_backends(self, relay, backend_port):
        """The backend ports relay forwards to: relay.backends of them."""
        return [backend_port]

    def cleanup(self):
        pass

    def load(self, param, port, relay_proc, log):
        raise NotImplementedError

    def verify(self, relay, res):
        """More columns for the run, counted once its CPU is read (a
        backend's own counts); raises LoadError if the run must not count."""
        return {}

    def tracked(self):
        """Backend processes whose CPU counts as 'ours' (not foreign)."""
        return list(self.backends)


class Bulk(Scenario):
    group = "bulk"
    metric = "gbit_per_s"
    cpu_per = "gb"

    def __init__(self, ctx, streams):
        super().__init__(ctx)
        self.streams = streams
        self.name = f"bulk{streams}"
        self.title = f"Bulk, iperf3, {streams} stream{'s' if streams > 1 else ''}"
        self.measures = (f"iperf3 -P {streams} for {ctx.seconds['bulk']} s; Gbit/s "
                         "received by the backend; relay CPU s per GB (1e9 B) moved")
        self.per_run = []

    def prepare(self, param, rundir, log):
        port = self.ctx.ports.get()
        self.per_run = [peers.start_iperf3_server(self.ctx, port, log)]
        return port

    def cleanup(self):
        for p in self.per_run:
            p.stop(grace=2)
        self.per_run = []

    def tracked(self):
        return self.per_run

    def load(self, param, port, relay_proc, log):
        return loads.iperf3(self.ctx, port, self.ctx.seconds["bulk"], self.streams,
                            log=log)


class Sweep(Bulk):
    """Chunk-size sweep: splice vs copy as the write size grows.

    With zrelay-load: `zrelay-load bulk --chunk SIZE` into `backend --mode
    sink`; without it (or --sweep-tool iperf3): `iperf3 -l SIZE`.
    """
    group = "sweep"
    reference = ("direct",)

    def __init__(self, ctx):
        super().__init__(ctx, 1)
        self.name = "sweep"

    # Described from ctx.sweep_tool, which is known only once the binaries
    # are located (and is read back from meta.json by --report-only).
    @property
    def zl(self):
        return getattr(self.ctx, "sweep_tool", "iperf3") == "zrelay-load"

    @property
    def title(self):
        return ("Chunk-size sweep, zrelay-load bulk --chunk, 1 stream" if self.zl
                else "Chunk-size sweep, iperf3 -l, 1 stream")

    @property
    def measures(self):
        s = self.ctx.seconds["sweep"]
        if self.zl:
            return (f"zrelay-load bulk --streams 1 --chunk CHUNK for {s} s per size into "
                    "zrelay-load backend --mode sink; one round, relays alternated within "
                    "each size; Gbit/s (relay CPU s/GB)")
        return (f"iperf3 -l CHUNK for {s} s per size; one round, relays alternated within "
                "each size; Gbit/s (relay CPU s/GB)")

    @title.setter
    def title(self, v):
        pass

    @measures.setter
    def measures(self, v):
        pass

    def setup(self, logdir):
        if self.zl:
            self.port = self.ctx.ports.get()
            self.backends = [peers.start_zload_backend(
                self.ctx, self.port, "sink", os.path.join(logdir, "backend-sweep.log"))]

    def prepare(self, param, rundir, log):
        return self.port if self.zl else super().prepare(param, rundir, log)

    def tracked(self):
        return self.backends + self.per_run

    def params(self):
        return self.ctx.sweep_chunks

    def accepts(self, relay):
        return super().accepts(relay) and relay.name in self.ctx.sweep_relays

    def load(self, param, port, relay_proc, log):
        s = self.ctx.seconds["sweep"]
        if self.zl:
            return loads.zload(self.ctx, ["bulk", "--target", f"127.0.0.1:{port}",
                                          "--streams", "1", "--chunk", str(param),
                                          "--duration", str(s)], s, log)
        return loads.iperf3(self.ctx, port, s, 1, length=param, log=log)


class HttpScenario(Scenario):
    """wrk against an nginx http backend answering 128 B bodies.

    Subclasses pick the timing key in ctx.seconds and whether every request
    opens a new connection (Connection: close)."""

    seconds_key = "rr"
    close = False

    def load(self, param, port, relay_proc, log):
        return loads.wrk(self.ctx, self.url(port), self.ctx.seconds[self.seconds_key],
                         self.ctx.rr_conns, close=self.close, log=log)

    def setup(self, logdir):
        self.port = self.ctx.ports.get()
        self.tls_port = self.ctx.ports.get()
        rundir = os.path.join(self.ctx.tmpdir, f"backend-{self.name}")
        self.backends = [peers.start_nginx_backend(
            self.ctx, self.port, self.tls_port, rundir,
            os.path.join(logdir, f"backend-{self.name}.log"), **self.backend_options(rundir))]

    def backend_options(self, rundir):
        """More arguments for start_nginx_backend."""
        return {}

    def prepare(self, param, rundir, log):
        return self.port

    def direct_port(self, backend_port):
        return self.tls_port if self.tls else self.port

    def url(self, port, path="/"):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}{path}"


class RR(HttpScenario):
    name = group = "rr"
    metric = "rps"
    cpu_per = "req"
    reference = ("haproxy-splice", "haproxy-nosplice", "haproxy-auto", "nginx")
    title = "Request/response, wrk, 50 connections, 128 B body"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.measures = (f"wrk -t2 -c{ctx.rr_conns} for {ctx.seconds['rr']} s, keep-alive, "
                         "128 B body from nginx; req/s, latency percentiles, relay CPU us per request")



class Connect(HttpScenario):
    name = group = "connect"
    seconds_key = "connect"
    close = True
    metric = "conns_per_s"
    cpu_per = "conn"
    reference = RR.reference
    title = "Connection rate, wrk Connection: close, 50 concurrent"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.measures = (f"wrk -t2 -c{ctx.rr_conns} -H 'Connection: close' for "
                         f"{ctx.seconds['connect']} s: one connection per 128 B request; "
                         "connections/s, relay CPU us per connection")



class Balance(Connect):
    """The connect load through relays balancing over two backend ports.

    One nginx backend serves both ports, so a relay's row with one backend
    and its "-lb" row with two differ only in the relay's own work. The
    backend logs the port of every request; each run reports the split and
    fails if a balancing relay gave either port less than MIN_SHARE.
    """
    name = group = "lb"
    backend_ports = 2
    # The relays run both ways: with one backend and (as "<name>-lb") with two.
    bases = ("zrelayd-auto", "haproxy-auto", "nginx")
    reference = ("haproxy-auto-lb", "nginx-lb")
    title = "Load balancing, 2 backends round-robin, wrk Connection: close, 50 concurrent"
    MIN_SHARE = 0.4   # round-robin gives each port half of the connections
    FLUSH_WAIT = 3.0  # seconds to wait for the backend's port log

    def __init__(self, ctx):
        super().__init__(ctx)
        self.measures = (f"wrk -t2 -c{ctx.rr_conns} -H 'Connection: close' for "
                         f"{ctx.seconds['connect']} s: one connection per 128 B request, "
                         "through each relay forwarding to one backend port and (-lb) "
                         "balancing round-robin over two ports of the same nginx; "
                         "connections/s, relay CPU us per connection, and the share of "
                         "requests each port served (from the backend's log)")

    def accepts(self, relay):
        return super().accepts(relay) and (relay.direct or relay.base in self.bases)

    def backend_options(self, rundir):
        self.port2 = self.ctx.ports.get()
        self.port_log = os.path.join(rundir, "ports.log")
        self.log_read = 0  # bytes of the port log already counted
        return {"more_ports": [self.port2], "port_log": self.port_log}

    def relay_backends(self, relay, backend_port):
        return [backend_port, self.port2][:relay.backends]

    def verify(self, relay, res):
        counts = self._count_ports(res["requests"])
        hits = [counts.get(self.port, 0), counts.get(self.port2, 0)]
        total = sum(hits)
        if total < res["requests"]:
            raise LoadError(f"the backend logged {total} requests, wrk completed "
                            f"{res['requests']}")
        out = {"backend1_reqs": hits[0], "backend2_reqs": hits[1],
               "backend2_pct": 100.0 * hits[1] / total}
        if relay.backends > 1 and min(hits) < self.MIN_SHARE * total:
            raise LoadError(f"not balancing: backend ports served {hits[0]} and {hits[1]} "
                            "requests")
        return out

    def _count_ports(self, expected):
        """{port: requests} logged since the last count: flushes the backend's
        log and reads it until it holds `expected` new lines, or FLUSH_WAIT.
        Requests wrk gave up on may show up in the next run's count."""
        peers.flush_port_log(self.backends[0])
        deadline = time.monotonic() + self.FLUSH_WAIT
        while True:
            with open(self.port_log, "rb") as f:
                f.seek(self.log_read)
                data = f.read()
            data = data[:data.rfind(b"\n") + 1]  # whole lines only
            if data.count(b"\n") >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.log_read += len(data)
        return collections.Counter(int(port) for port in data.split())


class TlsRR(RR):
    name = "tls-rr"
    group = "tls"
    seconds_key = "tls"
    tls = True
    reference = ("haproxy-tls", "nginx-tls")
    title = "TLS termination, request/response (keep-alive), 128 B body"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.measures = (f"wrk https -t2 -c{ctx.rr_conns} for {ctx.seconds['tls']} s, keep-alive; "
                         "direct = nginx terminating TLS itself; relay CPU us per request")



class TlsHandshake(Connect):
    name = "tls-hs"
    group = "tls"
    seconds_key = "tls"
    tls = True
    reference = ("haproxy-tls", "nginx-tls")
    title = "TLS termination, full handshakes (Connection: close), ECDSA P-256"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.measures = (f"wrk https -c{ctx.rr_conns} -H 'Connection: close' for "
                         f"{ctx.seconds['tls']} s: a full TLS handshake (no resumption) per "
                         "request; handshakes/s, relay CPU us per handshake")



class TlsBulk(HttpScenario):
    name = "tls-bulk"
    group = "tls"
    tls = True
    metric = "gbit_per_s"
    cpu_per = "gb"
    reference = ("haproxy-tls", "nginx-tls")
    title = "TLS termination, bulk (1 MiB responses, 4 connections)"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.measures = (f"wrk https -t2 -c4 GET /big (1 MiB) for {ctx.seconds['tls']} s; "
                         "Gbit/s of HTTP bytes read by wrk, relay CPU s per GB")

    def load(self, param, port, relay_proc, log):
        return loads.wrk(self.ctx, self.url(port, "/big"), self.ctx.seconds["tls"],
                         4, log=log)


class Idle(Scenario):
    name = group = "idle"
    metric = "kib_per_pair"
    needs_relay = True
    reference = ("haproxy-splice",)
    title = "Idle pairs: memory and fds per pair"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.measures = (f"{ctx.idle_pairs} pairs opened one by one, each carries a 16 B ping "
                         f"and pong, then idles {ctx.idle_hold} s; RSS (and PSS) KiB and fds per "
                         "pair = growth of the relay's process tree / pairs")
        self.listener = None

    def prepare(self, param, rundir, log):
        port = self.ctx.ports.get()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(4096)
        return port

    def cleanup(self):
        if self.listener:
            self.listener.close()
            self.listener = None

    def load(self, param, port, relay_proc, log):
        return loads.idle_pairs(self.ctx, port, self.listener, relay_proc.pid,
                                self.ctx.idle_pairs, self.ctx.idle_hold)


class ZloadRR(Scenario):
    """zrelay-load rr against zrelay-load backend (raw 128 B messages, no HTTP)."""
    name = "rr-zload"
    group = "rr"
    metric = "rps"
    cpu_per = "req"
    needs_zload = True
    reference = RR.reference
    title = "Request/response, zrelay-load rr, 50 connections, 128 B each way"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.measures = (f"zrelay-load rr --conns {ctx.rr_conns} --req 128 --resp 128 for "
                         f"{ctx.seconds['zload']} s against zrelay-load backend --mode fixed "
                         "(no HTTP: a 128 B request, a 128 B answer)")

    def setup(self, logdir):
        self.port = self.ctx.ports.get()
        self.backends = [peers.start_zload_backend(
            self.ctx, self.port, "fixed", os.path.join(logdir, f"backend-{self.name}.log"),
            req=128, resp=128)]

    def prepare(self, param, rundir, log):
        return self.port

    def conns(self, param):
        return self.ctx.rr_conns

    def load(self, param, port, relay_proc, log):
        s = self.ctx.seconds["zload"]
        return loads.zload(self.ctx, ["rr", "--target", f"127.0.0.1:{port}",
                                      "--conns", str(self.conns(param)), "--req", "128",
                                      "--resp", "128", "--duration", str(s)], s, log)


class ZloadConnect(ZloadRR):
    name = "connect-zload"
    group = "connect"
    metric = "conns_per_s"
    cpu_per = "conn"
    title = "Connection rate, zrelay-load connect, 50 in flight, 128 B each way"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.measures = (f"zrelay-load connect --conns {ctx.rr_conns} --req 128 --resp 128 "
                         f"for {ctx.seconds['zload']} s: connect, one 128 B exchange, close; "
                         "connections/s, relay CPU us per connection")

    def load(self, param, port, relay_proc, log):
        s = self.ctx.seconds["zload"]
        return loads.zload(self.ctx, ["connect", "--target", f"127.0.0.1:{port}",
                                      "--conns", str(self.ctx.rr_conns), "--req", "128",
                                      "--resp", "128", "--duration", str(s)], s, log)


class Concurrency(ZloadRR):
    """Request/response as the number of connections grows: what a relay pays
    per request when each loop turn has 1 connection's work or 200's (the
    io_uring backend's batching only shows with many). Opt-in: --only conc."""
    name = group = "conc"
    opt_in = True
    levels = (1, 10, 50, 200)
    title = "Request/response as concurrency grows, zrelay-load rr, 128 B each way"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.measures = (f"zrelay-load rr --conns N --req 128 --resp 128 for "
                         f"{ctx.seconds['zload']} s per N in {', '.join(map(str, self.levels))}, "
                         "against zrelay-load backend --mode fixed; req/s (relay CPU us per request)")

    def params(self):
        return list(self.levels)

    def conns(self, param):
        return param


class Udp(Scenario):
    """UDP request/response through the UDP relays (zrelayd-udp, nginx-udp,
    socat-udp) and direct: zrelay-load udp against zrelay-load backend --udp,
    per datagram size and flow count. Opt-in: --only udp."""
    name = group = "udp"
    opt_in = True
    udp = True           # the relay's port must be free for UDP
    metric = "rps"
    cpu_per = "dgram"
    needs_zload = True
    reference = ("nginx-udp",)
    sizes = (64, 1400)
    flow_counts = (1, 50)
    reply_timeout = "500ms"
    title = "UDP request/response, zrelay-load udp, 64 B and 1,400 B datagrams, 1 and 50 flows"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.measures = (f"zrelay-load udp --flows N --size S --reply-timeout "
                         f"{self.reply_timeout} for {ctx.seconds['udp']} s per (S, N), "
                         "against zrelay-load backend --udp (an echo): each flow is a UDP "
                         "socket with one datagram in flight, checked byte for byte on its way "
                         "back; req/s answered, loss (no answer within the reply timeout), "
                         "mismatched replies, latency, and relay CPU us per datagram (datagrams "
                         "the client sent plus those it received)")

    @staticmethod
    def param(size, flows):
        return f"{size}x{flows}"

    @staticmethod
    def split(param):
        size, flows = str(param).split("x")
        return int(size), int(flows)

    def params(self):
        return [self.param(s, n) for s in self.sizes for n in self.flow_counts]

    def accepts(self, relay):
        return (relay.direct and not relay.tls) or relay.udp

    def setup(self, logdir):
        self.port = self.ctx.ports.get(udp=True)
        self.backends = [peers.start_zload_udp_backend(
            self.ctx, self.port, os.path.join(logdir, "backend-udp.log"))]

    def prepare(self, param, rundir, log):
        return self.port

    def load(self, param, port, relay_proc, log):
        size, flows = self.split(param)
        return loads.zload_udp(self.ctx, port, size, flows, self.ctx.seconds["udp"],
                               self.reply_timeout, log)


def all_scenarios(ctx):
    return [Bulk(ctx, 1), Bulk(ctx, 4), RR(ctx), ZloadRR(ctx), Connect(ctx),
            ZloadConnect(ctx), Balance(ctx), Idle(ctx), TlsRR(ctx), TlsHandshake(ctx), TlsBulk(ctx),
            Sweep(ctx), Concurrency(ctx), Udp(ctx)]
