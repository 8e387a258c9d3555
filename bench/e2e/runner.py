"""bench/compare: run relays side by side on loopback, in alternating rounds.

See BENCHMARKS.md for what each scenario measures. Entry point: main().
"""

import argparse
import csv
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import peers
import procfs
import procs
import report
import scenarios
from loads import LoadError
from procs import StartError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CSV_FIELDS = [
    "run", "time", "scenario", "param", "relay", "round", "slot", "status", "error",
    "seconds", "gbit_per_s", "rps", "conns_per_s", "p50_us", "p90_us", "p99_us", "p999_us",
    "bytes", "requests", "conns", "errors", "retransmits",
    "relay_cpu_s", "relay_cpu_pct", "cpu_s_per_gb", "cpu_us_per_req", "cpu_us_per_conn",
    "pairs", "kib_per_pair", "pss_kib_per_pair", "fds_per_pair",
    "machine_busy_pct", "foreign_cpu_pct", "steal_pct", "busy_before_pct", "loadavg",
    "backend1_reqs", "backend2_reqs", "backend2_pct",
    # udp: datagrams the client sent + received, and what became of its requests
    "datagrams", "cpu_us_per_dgram", "lost", "loss_pct", "late", "mismatches", "unreachable",
    "client_cpu_us_per_req",
]

# Seconds per timed load. The default full run is ~250 runs and must stay
# under 15 minutes on 2 cores; --quick under 3.
QUICK_SECONDS = {"bulk": 1, "rr": 1, "connect": 1, "zload": 1, "tls": 1, "sweep": 1, "udp": 1}
# udp: a single flow's ping-pong swings with wakeup latency; runs of 2 s
# spread by 40-90 % there, runs of 5 s by 10-20 %.
DEFAULT_SECONDS = {"bulk": 3, "rr": 3, "connect": 2, "zload": 2, "tls": 2, "sweep": 2, "udp": 5}


class Context:
    """Everything a scenario or relay needs to know about this run."""


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="bench/compare",
        description="Compare zrelayd with HAProxy, nginx stream, socat and stunnel on "
                    "loopback, in alternating rounds. Writes bench/results/raw/<time>/ "
                    "and, for a full run, bench/results/latest.md, latest.csv and *.png.")
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds per scenario (default 3; --quick: 1)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 round, 1 s loads, fewer idle pairs and chunk sizes")
    ap.add_argument("--only", default="",
                    help="comma list of scenarios or groups: bulk,bulk1,bulk4,rr,rr-zload,"
                         "connect,lb,idle,tls,tls-rr,tls-hs,tls-bulk,sweep,conc,udp (conc and "
                         "udp: only when named)")
    ap.add_argument("--skip", default="", help="comma list of scenarios or groups to leave out")
    ap.add_argument("--relays", default="",
                    help="comma list of relays or prefixes (e.g. direct,haproxy,zrelayd-splice)")
    ap.add_argument("--seconds", type=float, default=None,
                    help="override the duration of every timed load")
    ap.add_argument("--workers", type=int, default=2,
                    help="threads/workers for every relay that has them (default 2)")
    ap.add_argument("--backend-workers", type=int, default=1,
                    help="nginx http backend worker processes (default 1)")
    ap.add_argument("--idle-pairs", type=int, default=None,
                    help="pairs held open in the idle scenario (default 2000; --quick: 300)")
    ap.add_argument("--pin", action="store_true",
                    help="taskset the relay to CPU 1 and load + backend to CPU 0 "
                         "(direct: backend on CPU 1). Default: no pinning")
    ap.add_argument("--nice", type=int, default=0,
                    help="run relays, backends and load tools at this niceness, e.g. -10 "
                         "on a machine shared with builds (default 0)")
    ap.add_argument("--quiet-below", type=float, default=None,
                    help="before each run, wait until the machine is less than this %% busy "
                         "(other processes), within --quiet-budget")
    ap.add_argument("--quiet-budget", type=float, default=120,
                    help="total seconds --quiet-below may wait in a whole run (default 120)")
    ap.add_argument("--no-build", action="store_true",
                    help="do not run bazel; use --zrelayd/--zrelay-load or existing bazel-bin")
    ap.add_argument("--bazel-output-base", default=None,
                    help="bazel --output_base for the build (default: bazel's default)")
    ap.add_argument("--zrelayd", default=None, help="path to a zrelayd binary")
    ap.add_argument("--zrelay-load", dest="zrelay_load", default=None,
                    help="path to a zrelay-load binary")
    ap.add_argument("--sweep-relays", default="",
                    help="relays in the chunk sweep (default: direct + zrelayd-splice/copy, "
                         "or haproxy-splice/nosplice until zrelayd exists)")
    ap.add_argument("--sweep-tool", choices=["auto", "iperf3", "zrelay-load"], default="auto",
                    help="load for the chunk sweep (auto: zrelay-load when built, else iperf3)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results"),
                    help="results directory (default bench/results)")
    ap.add_argument("--publish", action="store_true",
                    help="write latest.md/csv/png even for a --quick/--only/--relays run")
    ap.add_argument("--no-publish", action="store_true",
                    help="write only under raw/<time>/, even for a full run")
    ap.add_argument("--label", default="",
                    help="free text for the report header (e.g. where the binaries came from)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir of configs")
    ap.add_argument("--list", action="store_true", help="list scenarios and relays, then exit")
    ap.add_argument("--report-only", metavar="RAWDIR", default=None,
                    help="render report.md / summary.csv / PNGs again from RAWDIR/runs.csv "
                         "and RAWDIR/meta.json (with --publish: also latest.*)")
    return ap.parse_args(argv)


def _split(s):
    return [x.strip() for x in s.split(",") if x.strip()]


def locate_binaries(ctx, args, logdir):
    """Fill ctx.zrelayd / ctx.zload (paths or None) and reasons when missing."""
    ctx.zrelayd = args.zrelayd
    ctx.zload = args.zrelay_load
    ctx.zrelayd_missing = ctx.zload_missing = None
    targets = {"zrelayd": "//tools:zrelayd", "zload": "//tools/load:zrelay-load"}
    paths = {"zrelayd": "tools/zrelayd", "zload": "tools/load/zrelay-load"}
    ctx.zrelayd_has_tls = ctx.zrelayd_has_config = False
    wanted = [k for k in targets if getattr(ctx, k) is None]
    if wanted:
        _build_and_find(ctx, args, logdir, targets, paths, wanted)
    if ctx.zrelayd:
        rc, out = procs.run_bounded([ctx.zrelayd, "--help"], 10)
        ctx.zrelayd_has_tls = "--tls-cert" in (out or "")
        ctx.zrelayd_has_config = "--config" in (out or "")


def _build_and_find(ctx, args, logdir, targets, paths, wanted):
    bazel = ["bazel"] + ([f"--output_base={args.bazel_output_base}"]
                         if args.bazel_output_base else [])
    build_log = os.path.join(logdir, "bazel-build.log")
    built = {}
    if not args.no_build and shutil.which("bazel"):
        print(f"building {' '.join(targets[k] for k in wanted)} (log: {build_log}) ...",
              flush=True)
        t0 = time.monotonic()
        rc, _ = procs.run_bounded(bazel + ["build", "-c", "opt"] + [targets[k] for k in wanted],
                                  3600, build_log)
        if rc == 0:
            built = {k: True for k in wanted}
        else:  # one target may exist before the other: try them one by one
            for k in wanted:
                rc1, _ = procs.run_bounded(bazel + ["build", "-c", "opt", targets[k]],
                                           3600, build_log)
                built[k] = rc1 == 0
        print(f"  bazel done in {time.monotonic() - t0:.0f}s: "
              + ", ".join(f"{targets[k]} {'ok' if built[k] else 'FAILED'}" for k in wanted),
              flush=True)
    bin_dir = None
    if shutil.which("bazel") and (built or not args.no_build):
        rc, out = procs.run_bounded(bazel + ["info", "-c", "opt", "bazel-bin"], 300,
                                    build_log)
        if rc == 0 and out.strip():
            bin_dir = out.strip().splitlines()[-1]
    if bin_dir is None:
        bin_dir = os.path.join(REPO, "bazel-bin")
    for k in wanted:
        p = os.path.join(bin_dir, paths[k])
        if os.access(p, os.X_OK) and (args.no_build or built.get(k)):
            setattr(ctx, k, p)
        else:
            why = (f"{targets[k]} did not build (see {os.path.relpath(build_log, REPO)})"
                   if built.get(k) is False else f"{paths[k]} not found in {bin_dir}")
            setattr(ctx, k + "_missing", why)


def select(items, spec, key):
    if not spec:
        return list(items)
    want = _split(spec)
    return [it for it in items if any(key(it) == w or key(it).startswith(w + "-") or
                                      (getattr(it, "group", None) == w) for w in want)]


def snapshot(tracked):
    """CPU ticks of the tracked processes, this process and its reaped children.

    Tracked peers are read from /proc without Popen.poll(): polling would reap
    a peer that already exited (iperf3 -s -1 does, right after its test), and
    its CPU would fall between the two counts. A zombie's /proc/PID/stat
    still holds its times; it is reaped later, in stop().
    """
    tracked_ticks = sum(procfs.cpu_ticks(p.pid) for p in tracked if p.pid)
    t = os.times()
    own = (t.user + t.system + t.children_user + t.children_system) * procfs.CLK_TCK
    return {
        "wall": time.monotonic(),
        "machine": procfs.machine_ticks(),
        "ours": own + tracked_ticks,
    }


def wait_quiet(ctx):
    """Machine busy % just before a run (nothing of ours loaded); with
    --quiet-below, wait (within --quiet-budget seconds for the whole run)
    until it drops below that."""
    while True:
        m0 = procfs.machine_ticks()
        time.sleep(0.2)
        m1 = procfs.machine_ticks()
        busy = 100.0 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1])
        if ctx.quiet_below is None or busy < ctx.quiet_below or ctx.quiet_budget <= 0:
            return busy
        time.sleep(1.0)
        ctx.quiet_budget -= 1.2
        ctx.quiet_waited += 1.2


def run_one(ctx, scen, relay, param, rnd, slot, logdir, writer, csvfile):
    tag = f"{scen.name}{'-' + str(param) if param else ''}-{relay.name}-r{rnd}"
    log = os.path.join(logdir, tag + ".log")
    rundir = tempfile.mkdtemp(prefix=tag + "-", dir=ctx.tmpdir)
    rec = {"run": ctx.run_id, "time": datetime.datetime.now().isoformat(timespec="seconds"),
           "scenario": scen.name, "param": param or "", "relay": relay.name,
           "round": rnd, "slot": slot, "status": "ok", "error": ""}
    relay_proc = None
    saved_cpus = (ctx.relay_cpus, ctx.backend_cpus)
    if ctx.quiet_below is not None:
        rec["busy_before_pct"] = wait_quiet(ctx)
    moved = []
    try:
        if relay.direct and ctx.pin:
            # direct: the backend takes the relay's core, per-run backends
            # through ctx, the scenario's long-lived ones by affinity.
            ctx.backend_cpus = ctx.relay_cpus
            for b in scen.backends:
                procs.set_affinity(b.pid, ctx.relay_cpus)
                moved.append(b)
        backend_port = scen.prepare(param, rundir, log)
        if relay.direct:
            target = scen.direct_port(backend_port)
        else:
            target = ctx.ports.get(udp=scen.udp)
            relay_proc = relay.start(ctx, target, scen.relay_backends(relay, backend_port),
                                     rundir, log)
        tracked = scen.tracked() + ([relay_proc] if relay_proc else [])
        s0 = snapshot(tracked)
        r0 = procfs.cpu_ticks(relay_proc.pid) if relay_proc else 0
        res = scen.load(param, target, relay_proc, log)
        if relay_proc:
            relay_proc.remember_tree()
            if not relay_proc.alive():
                raise LoadError(f"relay exited with status {relay_proc.popen.returncode} "
                                "during the load")
            r1 = procfs.cpu_ticks(relay_proc.pid)
        s1 = snapshot(tracked)
        rec.update(res)
        wall = s1["wall"] - s0["wall"]
        mbusy = s1["machine"][0] - s0["machine"][0]
        mtotal = max(1, s1["machine"][1] - s0["machine"][1])
        rec["machine_busy_pct"] = 100.0 * mbusy / mtotal
        rec["steal_pct"] = 100.0 * (s1["machine"][2] - s0["machine"][2]) / mtotal
        rec["foreign_cpu_pct"] = max(0.0, 100.0 * (mbusy - (s1["ours"] - s0["ours"])) / mtotal)
        rec["loadavg"] = procfs.loadavg()
        if relay_proc:
            cpu = (r1 - r0) / procfs.CLK_TCK
            rec["relay_cpu_s"] = cpu
            rec["relay_cpu_pct"] = 100.0 * cpu / wall if wall > 0 else ""
            if res.get("bytes") and scen.cpu_per == "gb":
                rec["cpu_s_per_gb"] = cpu / (res["bytes"] / 1e9)
            if res.get("requests") and scen.cpu_per == "req":
                rec["cpu_us_per_req"] = cpu * 1e6 / res["requests"]
            if res.get("conns") and scen.cpu_per == "conn":
                rec["cpu_us_per_conn"] = cpu * 1e6 / res["conns"]
            if res.get("datagrams") and scen.cpu_per == "dgram":
                rec["cpu_us_per_dgram"] = cpu * 1e6 / res["datagrams"]
                rec["cpu_us_per_req"] = cpu * 1e6 / res["requests"]
        rec.update(scen.verify(relay, res))
    except StartError as e:
        rec["status"], rec["error"] = "failed", f"start: {e}"
        ctx.failures.append((scen.name, relay.name, str(e), e.log_tail))
    except LoadError as e:
        rec["status"], rec["error"] = "failed", f"load: {e}"
        tail = relay_proc.log_tail() if relay_proc else ""
        ctx.failures.append((scen.name, relay.name, str(e), tail))
    finally:
        ctx.relay_cpus, ctx.backend_cpus = saved_cpus
        for b in moved:
            procs.set_affinity(b.pid, ctx.backend_cpus)
        if relay_proc:
            relay_proc.stop()
        scen.cleanup()
        if not ctx.keep_tmp:
            shutil.rmtree(rundir, ignore_errors=True)
    writer.writerow({k: _fmt(rec.get(k, "")) for k in CSV_FIELDS})
    csvfile.flush()
    ctx.records.append(rec)
    head = rec.get(scen.metric, "")
    print(f"  r{rnd} {scen.name:9s} {str(param or ''):>8s} {relay.name:17s} "
          + (f"{rec['status']:6s} {rec['error']}" if rec["status"] != "ok" else
             f"{scen.metric}={_fmt(head)}"
             + (f" relay_cpu={rec['relay_cpu_s']:.2f}s" if "relay_cpu_s" in rec else "")
             + "".join(f" {k}={rec[k]}" for k in ("lost", "mismatches") if rec.get(k))
             + (f" foreign={rec['foreign_cpu_pct']:.0f}%" if rec.get("foreign_cpu_pct", 0) >= 10
                else "")),
          flush=True)
    return rec["status"] == "ok"


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def report_only(args, relays):
    rawdir = args.report_only
    try:
        with open(os.path.join(rawdir, "meta.json")) as f:
            meta = json.load(f)
    except FileNotFoundError:  # the run died before its report: describe this machine
        ctx = Context()
        ctx.run_id, ctx.rounds, ctx.seconds = os.path.basename(rawdir.rstrip("/")), 3, \
            DEFAULT_SECONDS
        ctx.workers, ctx.backend_workers, ctx.idle_pairs, ctx.pin = 2, 1, 2000, False
        ctx.zrelayd, ctx.skipped, ctx.failures = None, [], []
        meta = report.machine_info(ctx, args, 0.0, REPO)
        meta.pop("ctx")
    ctx = Context()
    defaults = {"run_id": meta.get("run"), "rounds": meta.get("rounds", 3),
                "seconds": meta.get("seconds", DEFAULT_SECONDS), "workers": 2,
                "backend_workers": 1, "rr_conns": 50, "idle_pairs": meta.get("idle_pairs", 2000),
                "idle_hold": 1.0, "sweep_chunks": [1024, 4096, 16384, 65536, 262144, 1 << 20],
                "sweep_relays": ["direct", "zrelayd-splice", "zrelayd-copy"],
                "sweep_tool": "zrelay-load", "pin": meta.get("pin", False), "nice": 0,
                "quick": False, "zrelayd": None, "zload": None, "zrelayd_has_tls": False,
                "zrelayd_has_config": False,
                "zrelayd_missing": None, "zload_missing": None}
    defaults.update(meta.get("ctx", {}))
    for k, v in defaults.items():
        setattr(ctx, k, v)
    ctx.seconds = dict(DEFAULT_SECONDS, **ctx.seconds)
    ctx.skipped = [tuple(x) for x in meta.get("skipped", [])]
    ctx.failures = [tuple(x) for x in meta.get("failures", [])]
    with open(os.path.join(rawdir, "runs.csv")) as f:
        ctx.records = list(csv.DictReader(f))
    scens = scenarios.all_scenarios(ctx)
    report.write_all(ctx, scens, relays, meta, rawdir, args.out if args.publish else None)
    print(f"report: {os.path.join(rawdir, 'report.md')}"
          + (f", published to {os.path.join(args.out, 'latest.md')}" if args.publish else ""))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args._argv = list(argv)
    ctx = Context()
    ctx.quick = args.quick
    ctx.rounds = args.rounds or (1 if args.quick else 3)
    ctx.seconds = dict(QUICK_SECONDS if args.quick else DEFAULT_SECONDS)
    if args.seconds:
        ctx.seconds = {k: max(1, int(round(args.seconds))) for k in ctx.seconds}
    ctx.workers = args.workers
    ctx.backend_workers = args.backend_workers
    ctx.rr_conns = 50
    ctx.idle_pairs = args.idle_pairs or (200 if args.quick else 2000)
    ctx.idle_hold = 1.0
    ctx.sweep_chunks = ([4096, 65536, 1 << 20] if args.quick else
                        [1024, 4096, 16384, 65536, 262144, 1 << 20])
    ctx.pin = args.pin
    ctx.relay_cpus = "1" if args.pin else None
    ctx.load_cpus = ctx.backend_cpus = "0" if args.pin else None
    ctx.keep_tmp = args.keep_tmp
    ctx.nice = procs.NICE = args.nice
    ctx.quiet_below, ctx.quiet_budget, ctx.quiet_waited = args.quiet_below, args.quiet_budget, 0.0
    ctx.records, ctx.failures, ctx.skipped = [], [], []

    relays = peers.all_relays()
    scens = scenarios.all_scenarios(ctx)
    if args.report_only:
        return report_only(args, relays)
    if args.list:
        for s in scens:
            print(f"scenario {s.name:9s} group {s.group:8s} {s.title}")
        for r in relays:
            print(f"relay    {r.name:17s} {'TLS ' if r.tls else ''}{r.note}")
        return 0

    ctx.run_id = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    rawdir = os.path.join(args.out, "raw", ctx.run_id)
    logdir = os.path.join(rawdir, "logs")
    os.makedirs(logdir, exist_ok=True)
    ctx.tmpdir = tempfile.mkdtemp(prefix="zrelay-bench-")
    os.chmod(ctx.tmpdir, 0o711)  # nginx workers (user nobody) must reach their files
    ctx.ports = procs.PortAllocator()

    def on_term(signum, frame):
        raise SystemExit(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    status = 0
    t_start = time.monotonic()
    ctx.label = args.label
    ctx.commit = report.checkout_state(REPO)
    csv_path = os.path.join(rawdir, "runs.csv")
    try:
        locate_binaries(ctx, args, logdir)
        ctx.certs = peers.make_certs(ctx.tmpdir, os.path.join(logdir, "openssl.log"))
        ctx.sweep_tool = args.sweep_tool
        if ctx.sweep_tool == "auto" or (ctx.sweep_tool == "zrelay-load" and not ctx.zload):
            ctx.sweep_tool = "zrelay-load" if ctx.zload else "iperf3"
        if args.sweep_relays:
            ctx.sweep_relays = _split(args.sweep_relays)
        elif ctx.zrelayd:
            ctx.sweep_relays = ["direct", "zrelayd-splice", "zrelayd-copy"]
        else:
            ctx.sweep_relays = ["direct", "haproxy-splice", "haproxy-nosplice"]

        chosen_scens = select(scens, args.only, lambda s: s.name)
        if not args.only:
            chosen_scens = [s for s in chosen_scens if not s.opt_in]
        if args.skip:
            drop = {s.name for s in select(scens, args.skip, lambda s: s.name)}
            chosen_scens = [s for s in chosen_scens if s.name not in drop]
        chosen_relays = select(relays, args.relays, lambda r: r.name)
        if args.relays and not any(r.direct for r in chosen_relays):
            print("note: 'direct' not selected: no fraction-of-direct column")

        unavailable = {}
        for r in chosen_relays:
            why = r.available(ctx)
            if why:
                unavailable[r.name] = why
                ctx.skipped.append((r.name, why))
                print(f"skipping relay {r.name}: {why}")
        runnable = [r for r in chosen_relays if r.name not in unavailable]

        with open(csv_path, "w", newline="") as csvfile:
            writer = csv.DictWriter(csvfile, fieldnames=CSV_FIELDS)
            writer.writeheader()
            for scen in chosen_scens:
                why = scen.available()
                if why:
                    ctx.skipped.append((scen.name, why))
                    print(f"skipping scenario {scen.name}: {why}")
                    continue
                rs = [r for r in runnable if scen.accepts(r)]
                if not rs or (len(rs) == 1 and rs[0].direct and scen.name != "sweep"):
                    continue
                rounds = 1 if scen.group == "sweep" else ctx.rounds
                print(f"== {scen.name}: {scen.title} ({len(rs)} relays x {rounds} rounds"
                      + (f" x {len(scen.params())} sizes" if scen.params()[0] else "")
                      + ")", flush=True)
                try:
                    scen.setup(logdir)
                except StartError as e:
                    ctx.failures.append((scen.name, "backend", str(e), e.log_tail))
                    print(f"  backend failed: {e}\n{e.log_tail}")
                    continue
                fails = {}
                try:
                    for rnd in range(rounds):
                        for param in scen.params():
                            k = rnd * len(scen.params()) + scen.params().index(param)
                            order = rs[k % len(rs):] + rs[:k % len(rs)]
                            for slot, relay in enumerate(order):
                                if fails.get(relay.name, 0) >= 2:
                                    continue  # failed twice here: do not waste the budget
                                if not run_one(ctx, scen, relay, param, rnd, slot, logdir,
                                               writer, csvfile):
                                    fails[relay.name] = fails.get(relay.name, 0) + 1
                finally:
                    scen.teardown()
    except KeyboardInterrupt:
        print("\ninterrupted: stopping peers, writing what was measured")
    except Exception:  # a harness bug: still stop the peers and report what ran
        traceback.print_exc()
        print("harness error: stopping peers, writing what was measured")
        status = 1
    finally:
        procs.stop_all()
        if not ctx.keep_tmp:
            shutil.rmtree(ctx.tmpdir, ignore_errors=True)
        else:
            print(f"configs kept in {ctx.tmpdir}")

    elapsed = time.monotonic() - t_start
    full = status == 0 and not (args.quick or args.only or args.skip or args.relays or args.rounds or
                args.seconds)
    publish = (full or args.publish) and not args.no_publish
    meta = report.machine_info(ctx, args, elapsed, REPO)
    report.write_all(ctx, scens, relays, meta, rawdir, args.out if publish else None)
    print(f"\ndone in {elapsed / 60:.1f} min; runs: {os.path.relpath(csv_path)}")
    print(f"report: {os.path.relpath(os.path.join(rawdir, 'report.md'))}"
          + (f", published to {os.path.relpath(os.path.join(args.out, 'latest.md'))}"
             if publish else " (not published: partial run; --publish to publish)"))
    return status
