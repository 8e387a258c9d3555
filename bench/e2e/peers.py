"""The relays under test and the backends behind them.

A relay is started fresh for every run from its own config file in the run's
temp dir, listens on 127.0.0.1:<port> and forwards to 127.0.0.1:<backend>
(a balancing relay: round-robin over several backend ports). Every relay that
can use threads or workers gets the same count (--workers, default 2).
"""

import os
import signal
import string
import subprocess
import threading
import urllib.request

import procs
from procs import Proc, StartError

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "templates")

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


def render(template, path, **values):
    with open(os.path.join(TEMPLATES, template)) as f:
        text = string.Template(f.read()).substitute(values)
    with open(path, "w") as f:
        f.write(text)
    return path


class Relay:
    """One relay configuration. name is what --relays and the tables use."""

    tls = False      # terminates TLS from the client (TLS scenarios only)
    udp = False      # relays UDP datagrams (the udp scenario only)
    direct = False   # no relay at all: the load goes straight to the backend
    family = ""      # haproxy / nginx / socat / stunnel / zrelayd / direct
    note = ""
    groups = ()      # scenario groups it runs in; empty: all

    def __init__(self, name, backends=1):
        # A balancing relay (round-robin over `backends` ports) is named after
        # the same relay with one backend, its `base`, plus "-lb".
        self.base = name
        self.backends = backends
        self.name = name + ("-lb" if backends > 1 else "")

    def available(self, ctx):
        """None if runnable here, else a reason to skip it."""
        return None

    def argv(self, ctx, port, backends, rundir):
        """backends: the backend ports, self.backends of them."""
        raise NotImplementedError

    def start(self, ctx, port, backends, rundir, log_path):
        if len(backends) != self.backends:
            raise StartError(f"{self.name} forwards to {self.backends} backends, "
                             f"the scenario gave {len(backends)}")
        p = Proc(self.name, self.argv(ctx, port, backends, rundir), log_path,
                 cpus=ctx.relay_cpus)
        p.start()
        p.wait_listening(port)
        return p


class Direct(Relay):
    direct = True
    family = "direct"
    note = "no relay: client straight to the backend (the machine's limit)"

    def __init__(self, tls=False):
        super().__init__("direct")
        self.tls = tls


def _servers(backends, line):
    """One config line per backend port, line formatted with i (from 1) and addr."""
    return "\n".join(line.format(i=i, addr=f"127.0.0.1:{b}")
                     for i, b in enumerate(backends, 1))


def _have(binary):
    from shutil import which
    return which(binary) is not None


class HAProxy(Relay):
    family = "haproxy"
    OPTIONS = {
        "splice": "    option splice-request\n    option splice-response",
        "nosplice": ("    no option splice-request\n    no option splice-response\n"
                     "    no option splice-auto"),
        "auto": "    option splice-auto",
        "tls": "",
    }

    def __init__(self, variant, backends=1):
        super().__init__("haproxy-" + variant, backends)
        self.variant = variant
        self.tls = variant == "tls"
        self.note = {
            "splice": "mode tcp, option splice-request + splice-response",
            "nosplice": "mode tcp, no option splice-*",
            "auto": "mode tcp, option splice-auto",
            "tls": "mode tcp, bind ... ssl crt",
        }[variant] + (f", balance roundrobin over {backends} servers" if backends > 1 else "")

    def available(self, ctx):
        return None if _have("haproxy") else "haproxy not installed"

    def argv(self, ctx, port, backends, rundir):
        cfg = render("haproxy.cfg.tmpl", os.path.join(rundir, "haproxy.cfg"),
                     variant=self.variant, threads=ctx.workers,
                     global_extra="", proxy_options=self.OPTIONS[self.variant],
                     listen=f"127.0.0.1:{port}",
                     servers=_servers(backends, "    server s{i} {addr}"),
                     bind_ssl=f"ssl crt {ctx.certs['pem']}" if self.tls else "")
        return ["haproxy", "-db", "-f", cfg]


class NginxStream(Relay):
    family = "nginx"

    def __init__(self, tls=False, backends=1):
        super().__init__("nginx-tls" if tls else "nginx", backends)
        self.tls = tls
        self.note = ("stream, listen ... ssl + proxy_pass" if tls
                     else "stream, proxy_pass")
        if backends > 1:
            self.note += f" to an upstream of {backends} servers (round-robin)"

    def available(self, ctx):
        if not _have("nginx"):
            return "nginx not installed"
        if not os.path.exists(NGINX_STREAM_MODULE):
            return f"{NGINX_STREAM_MODULE} missing (apt-get install libnginx-mod-stream)"
        return None

    def argv(self, ctx, port, backends, rundir):
        ssl_conf = ""
        if self.tls:
            # nginx 1.22 defaults to TLSv1..TLSv1.2; the other terminators
            # (and wrk) settle on TLS 1.3, so allow it here too.
            ssl_conf = (f"        ssl_certificate {ctx.certs['cert']};\n"
                        f"        ssl_certificate_key {ctx.certs['key']};\n"
                        "        ssl_protocols TLSv1.2 TLSv1.3;")
        upstream, backend = "", f"127.0.0.1:{backends[0]}"
        if len(backends) > 1:
            # No balancing directive: round-robin is nginx's default.
            upstream = ("    upstream backends {\n"
                        + _servers(backends, "        server {addr};") + "\n    }")
            backend = "backends"
        cfg = render("nginx-stream.conf.tmpl", os.path.join(rundir, "nginx.conf"),
                     variant=self.name, workers=ctx.workers, dir=rundir,
                     listen=f"127.0.0.1:{port}", upstream=upstream, backend=backend,
                     listen_ssl="ssl" if self.tls else "", ssl_conf=ssl_conf)
        return ["nginx", "-p", rundir, "-e", "stderr", "-c", cfg]


class Socat(Relay):
    family = "socat"
    note = "TCP-LISTEN,fork,reuseaddr,backlog=4096,nodelay -> TCP,nodelay (one process per connection)"

    def __init__(self):
        super().__init__("socat")

    def available(self, ctx):
        return None if _have("socat") else "socat not installed"

    def argv(self, ctx, port, backends, rundir):
        return ["socat",
                f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,backlog=4096,nodelay",
                f"TCP:127.0.0.1:{backends[0]},nodelay"]


class Stunnel(Relay):
    family = "stunnel"
    tls = True
    note = "TLS termination, a thread per connection"

    def __init__(self):
        super().__init__("stunnel")

    def binary(self):
        for b in ("stunnel4", "stunnel"):
            if _have(b):
                return b
        return None

    def available(self, ctx):
        return None if self.binary() else "stunnel4 not installed"

    def argv(self, ctx, port, backends, rundir):
        cfg = render("stunnel.conf.tmpl", os.path.join(rundir, "stunnel.conf"),
                     listen=f"127.0.0.1:{port}", backend=f"127.0.0.1:{backends[0]}",
                     cert=ctx.certs["cert"], key=ctx.certs["key"])
        return [self.binary(), cfg]


class Zrelayd(Relay):
    family = "zrelayd"

    def __init__(self, mode, backends=1, io="epoll"):
        # zrelayd-splice, ...; on io_uring loops: zrelayd-uring-splice, ...
        prefix = "zrelayd-" if io == "epoll" else f"zrelayd-{io}-"
        super().__init__(prefix + mode, backends)
        self.mode = mode
        self.io = io
        self.tls = mode == "tls"
        self.note = ("--tls-cert/--tls-key (termination)" if self.tls
                     else f"--mode {mode}")
        if io != "epoll":
            self.note += f" --io {io}"
        if backends > 1:
            self.note = (f"--config: mode {mode}, balance round-robin over "
                         f"{backends} backends")

    def available(self, ctx):
        if not ctx.zrelayd:
            return ctx.zrelayd_missing or "zrelayd not built"
        if self.tls and not ctx.zrelayd_has_tls:
            return "zrelayd has no --tls-cert flag yet"
        if self.backends > 1 and not ctx.zrelayd_has_config:
            return "zrelayd has no --config flag yet"
        return None

    def argv(self, ctx, port, backends, rundir):
        if len(backends) > 1:  # several backends need the config file
            cfg = render("zrelayd.toml.tmpl", os.path.join(rundir, "zrelayd.toml"),
                         variant=self.name, workers=ctx.workers, mode=self.mode,
                         listen=f"127.0.0.1:{port}",
                         backends=_servers(backends, '[[listener.backend]]\naddress = "{addr}"\n'))
            return [ctx.zrelayd, "--config", cfg]
        argv = [ctx.zrelayd, "--listen", f"127.0.0.1:{port}",
                "--backend", f"127.0.0.1:{backends[0]}", "--workers", str(ctx.workers)]
        if self.tls:
            argv += ["--tls-cert", ctx.certs["cert"], "--tls-key", ctx.certs["key"]]
        else:
            argv += ["--mode", self.mode]
        if self.io != "epoll":
            argv += ["--io", self.io]
        return argv


class UdpRelay(Relay):
    """A relay of UDP datagrams: runs only in the udp scenario, and is up
    once a UDP socket is bound to its port."""

    udp = True
    groups = ("udp",)

    def start(self, ctx, port, backends, rundir, log_path):
        p = Proc(self.name, self.argv(ctx, port, backends, rundir), log_path,
                 cpus=ctx.relay_cpus)
        p.start()
        p.wait_listening(port, udp=True)
        return p


class ZrelaydUdp(UdpRelay):
    family = "zrelayd"
    note = '--config: one [[listener]] with protocol = "udp"'

    def __init__(self):
        super().__init__("zrelayd-udp")

    def _config(self, ctx, path, port, backend_port):
        return render("zrelayd-udp.toml.tmpl", path, variant=self.name, workers=ctx.workers,
                      listen=f"127.0.0.1:{port}", backend=f"127.0.0.1:{backend_port}")

    def available(self, ctx):
        if not ctx.zrelayd:
            return ctx.zrelayd_missing or "zrelayd not built"
        if not ctx.zrelayd_has_config:
            return "zrelayd has no --config flag yet"
        # Whether this zrelayd knows UDP listeners: `zrelayd --check` on the
        # very file a run uses (it binds nothing). Asked once per run.
        if not hasattr(ctx, "zrelayd_udp_missing"):
            cfg = self._config(ctx, os.path.join(ctx.tmpdir, "zrelayd-udp-check.toml"),
                               21000, 21001)
            rc, out = procs.run_bounded([ctx.zrelayd, "--check", cfg], 30)
            line = next((l for l in (out or "").splitlines() if l.strip()), "")
            line = line.replace(cfg, os.path.basename(cfg))  # no temp paths in reports
            ctx.zrelayd_udp_missing = (None if rc == 0 else
                                       f'zrelayd --check refuses protocol = "udp": {line}')
        return ctx.zrelayd_udp_missing

    def argv(self, ctx, port, backends, rundir):
        cfg = self._config(ctx, os.path.join(rundir, "zrelayd.toml"), port, backends[0])
        return [ctx.zrelayd, "--config", cfg]


class NginxUdp(UdpRelay):
    """nginx stream UDP. nginx-udp keeps a session per client address until
    it has been idle for proxy_timeout, as zrelayd keeps a flow (the fair
    match, and the reference); nginx-udp-per-datagram ends each session with
    its one answer (proxy_responses 1, the usual DNS setup), which opens and
    closes an upstream socket per datagram."""
    family = "nginx"

    def __init__(self, per_datagram=False):
        super().__init__("nginx-udp-per-datagram" if per_datagram else "nginx-udp")
        self.per_datagram = per_datagram
        self.note = ("stream, listen ... udp reuseport, proxy_pass, proxy_timeout 10s" +
                     (", proxy_responses 1" if per_datagram else ""))

    def available(self, ctx):
        return NginxStream.available(self, ctx)

    def argv(self, ctx, port, backends, rundir):
        cfg = render("nginx-stream-udp.conf.tmpl", os.path.join(rundir, "nginx.conf"),
                     variant=self.name, workers=ctx.workers, dir=rundir,
                     listen=f"127.0.0.1:{port}", backend=f"127.0.0.1:{backends[0]}",
                     responses="proxy_responses 1;" if self.per_datagram else "")
        return ["nginx", "-p", rundir, "-e", "stderr", "-c", cfg]


class SocatUdp(UdpRelay):
    family = "socat"
    note = ("UDP-LISTEN,fork,reuseaddr -> UDP (a process per client address; "
            "children end after 10 s idle)")

    def __init__(self):
        super().__init__("socat-udp")

    def available(self, ctx):
        return None if _have("socat") else "socat not installed"

    def argv(self, ctx, port, backends, rundir):
        # -T 10: a child (one per client address) exits after 10 s without
        # traffic, so none outlives its flows for long.
        return ["socat", "-T", "10", f"UDP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                f"UDP:127.0.0.1:{backends[0]}"]


class ScrapedProc(Proc):
    """A relay whose admin endpoint a thread of the harness scrapes every
    `interval` seconds until the relay stops (the cost of being watched)."""

    def __init__(self, *args, metrics_url, interval, **kwargs):
        super().__init__(*args, **kwargs)
        self.metrics_url = metrics_url
        self.interval = interval
        self.scrapes = 0
        self.scrape_errors = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._scrape, daemon=True)

    def start_scraping(self):
        self._thread.start()

    def _scrape(self):
        while not self._done.wait(self.interval):
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=2) as r:
                    r.read()
                self.scrapes += 1
            except OSError:
                self.scrape_errors += 1

    def stop(self, grace=5.0):
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()
            with open(self.log_path, "a") as f:
                f.write(f"harness: {self.scrapes} scrapes of {self.metrics_url}, "
                        f"{self.scrape_errors} failed\n")
        super().stop(grace)


class ZrelaydScraped(Zrelayd):
    """zrelayd with its admin endpoint scraped every 100 ms during the load:
    beside the same mode unscraped, what /metrics costs the data path."""

    groups = ("bulk",)  # where a scrape's cost on the data path shows

    def __init__(self, mode, interval=0.1):
        super().__init__(mode)
        self.name = self.base = f"zrelayd-{mode}-scraped"
        self.interval = interval
        self.note = f"--mode {mode}, GET /metrics every {interval * 1000:.0f} ms"

    def available(self, ctx):
        if ctx.zrelayd and not ctx.zrelayd_has_config:
            return "zrelayd has no --config flag yet"
        return super().available(ctx)

    def start(self, ctx, port, backends, rundir, log_path):
        admin_port = ctx.ports.get()
        cfg = render("zrelayd-admin.toml.tmpl", os.path.join(rundir, "zrelayd.toml"),
                     variant=self.name, workers=ctx.workers, mode=self.mode,
                     listen=f"127.0.0.1:{port}", backend=backends[0], admin_port=admin_port)
        p = ScrapedProc(self.name, [ctx.zrelayd, "--config", cfg], log_path, cpus=ctx.relay_cpus,
                        metrics_url=f"http://127.0.0.1:{admin_port}/metrics",
                        interval=self.interval)
        p.start()
        p.wait_listening(port)
        p.wait_listening(admin_port)
        p.start_scraping()
        return p


def all_relays():
    """Every relay the harness knows, plain ones first, in table order."""
    return [
        Direct(),
        Zrelayd("splice"), Zrelayd("copy"), Zrelayd("auto"), Zrelayd("auto", backends=2),
        Zrelayd("splice", io="uring"), Zrelayd("copy", io="uring"), Zrelayd("auto", io="uring"),
        ZrelaydScraped("splice"),
        HAProxy("splice"), HAProxy("nosplice"), HAProxy("auto"), HAProxy("auto", backends=2),
        NginxStream(), NginxStream(backends=2), Socat(),
        Direct(tls=True),
        Zrelayd("tls"), Zrelayd("tls", io="uring"), HAProxy("tls"), NginxStream(tls=True),
        Stunnel(),
        ZrelaydUdp(), NginxUdp(), NginxUdp(per_datagram=True), SocatUdp(),
    ]


def make_certs(tmpdir, log_path):
    """A throwaway P-256 self-signed certificate for 127.0.0.1 / localhost."""
    cert = os.path.join(tmpdir, "cert.pem")
    key = os.path.join(tmpdir, "key.pem")
    pem = os.path.join(tmpdir, "cert+key.pem")  # HAProxy wants both in one file
    with open(log_path, "ab") as log:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
             "-keyout", key, "-out", cert],
            check=True, stdout=log, stderr=log, timeout=30)
    with open(pem, "w") as out:
        for p in (cert, key):
            with open(p) as f:
                out.write(f.read())
    for p in (cert, key, pem):
        os.chmod(p, 0o644)  # nginx/haproxy read them as root before any setuid
    return {"cert": cert, "key": key, "pem": pem}


# ---------------------------------------------------------------- backends

def start_nginx_backend(ctx, port, tls_port, rundir, log_path, body_len=128,
                        big_len=1 << 20, more_ports=(), port_log=None):
    """nginx http on port, tls_port and more_ports (plain, served the same).

    port_log: a file that gets the port of every request served, one line
    each, buffered by nginx until flush_port_log()."""
    os.makedirs(rundir, exist_ok=True)
    os.chmod(rundir, 0o755)  # nginx workers run as nobody and read big.bin
    with open(os.path.join(rundir, "big.bin"), "wb") as f:
        f.write(os.urandom(big_len))
    os.chmod(os.path.join(rundir, "big.bin"), 0o644)
    cfg = render("nginx-backend.conf.tmpl", os.path.join(rundir, "nginx.conf"),
                 workers=ctx.backend_workers, dir=rundir, body_len=body_len,
                 big_len=big_len, body="x" * body_len,
                 listen=f"127.0.0.1:{port}", tls_listen=f"127.0.0.1:{tls_port}",
                 more_listens=_servers(more_ports, "        listen {addr} backlog=4096;"),
                 access_log=f"access_log {port_log} port buffer=64k" if port_log
                 else "access_log off",
                 cert=ctx.certs["cert"], key=ctx.certs["key"])
    p = Proc("backend-nginx", ["nginx", "-p", rundir, "-e", "stderr", "-c", cfg],
             log_path, cpus=ctx.backend_cpus)
    p.start()
    p.wait_listening(port)
    p.wait_listening(tls_port, settle=0)
    return p


def flush_port_log(backend):
    """Ask the nginx backend to write out its buffered port log.

    SIGUSR1 (reopen the logs) makes every worker flush its buffer first; it
    is asynchronous, so the reader waits for the lines it expects."""
    os.kill(backend.pid, signal.SIGUSR1)


def start_iperf3_server(ctx, port, log_path):
    """A one-shot iperf3 server: it serves exactly one test, then exits."""
    p = Proc("backend-iperf3", ["iperf3", "-s", "-1", "-B", "127.0.0.1",
                                "-p", str(port)], log_path, cpus=ctx.backend_cpus)
    p.start()
    p.wait_listening(port, settle=0.05)
    return p


def start_zload_udp_backend(ctx, port, log_path):
    """zrelay-load backend --udp: echoes every datagram to its sender."""
    argv = [ctx.zload, "backend", "--udp", "--listen", f"127.0.0.1:{port}",
            "--duration", "1800", "--workers", str(ctx.backend_workers)]
    p = Proc("backend-zrelay-load-udp", argv, log_path, cpus=ctx.backend_cpus)
    p.start()
    p.wait_listening(port, udp=True)
    return p


def start_zload_backend(ctx, port, mode, log_path, req=None, resp=None):
    # --duration bounds it even if the harness were killed with SIGKILL.
    argv = [ctx.zload, "backend", "--listen", f"127.0.0.1:{port}", "--mode", mode,
            "--duration", "1800", "--workers", str(ctx.backend_workers)]
    if req:
        argv += ["--req", str(req)]
    if resp:
        argv += ["--resp", str(resp)]
    p = Proc("backend-zrelay-load", argv, log_path, cpus=ctx.backend_cpus)
    p.start()
    p.wait_listening(port)
    return p
