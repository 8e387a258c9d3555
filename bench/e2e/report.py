"""Medians, ratios, the Markdown report, the summary CSV and the gnuplot PNGs."""

import csv
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _shown(word):
    """A path outside the checkout, as the report shows it: BIN/<name>.

    Reports are committed; the machine's own directories mean nothing to a
    reader and would leak local layout into the repository."""
    if not isinstance(word, str) or not os.path.isabs(word):
        return word
    if os.path.abspath(word).startswith(REPO + os.sep):
        return os.path.relpath(word, REPO)
    return "BIN/" + os.path.basename(word)

# Per scenario kind: the columns of its table, as (header, key, format).
RATE_COLS = {
    "gbit_per_s": [("Gbit/s", "gbit_per_s", "{:.2f}")],
    "rps": [("req/s", "rps", "{:,.0f}")],
    "conns_per_s": [("conn/s", "conns_per_s", "{:,.0f}")],
}


def _cmd(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def checkout_state(repo):
    """Short HEAD, plus a note when tracked files differ from it (bazel builds
    the working tree, not HEAD)."""
    head = _cmd(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
    dirty = _cmd(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"])
    return head + (" + uncommitted changes" if dirty else "")


def machine_info(ctx, args, elapsed, repo):
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    first = lambda s: s.splitlines()[0] if s else "not installed"
    versions = {
        "haproxy": first(_cmd(["haproxy", "-v"])),
        "nginx": first(_cmd(["nginx", "-v"])),
        "socat": (_cmd(["socat", "-V"]).splitlines() or ["", "not installed"])[1:2][0]
        if _cmd(["socat", "-V"]) else "not installed",
        "stunnel": next((l for l in _cmd(["stunnel4", "-version"]).splitlines()
                         if l.startswith("stunnel ")), "not installed"),
        "iperf3": first(_cmd(["iperf3", "--version"])),
        "wrk": first(_cmd(["wrk", "--version"])).split(" Copyright")[0],
        "openssl": first(_cmd(["openssl", "version"])),
        "gnuplot": first(_cmd(["gnuplot", "--version"])),
    }
    if ctx.zrelayd:
        versions["zrelayd"] = _shown(ctx.zrelayd)
    commit = getattr(ctx, "commit", None) or checkout_state(repo)
    if ctx.zrelayd and getattr(args, "zrelayd", None):
        binaries = f"zrelayd {_shown(ctx.zrelayd)} (given)"
    elif ctx.zrelayd:
        binaries = "zrelayd and zrelay-load built by bazel from this checkout"
    else:
        binaries = "zrelayd not available"
    return {
        "label": getattr(ctx, "label", ""),
        "binaries": binaries,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "run": ctx.run_id,
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "commit": commit,
        "versions": versions,
        "rounds": ctx.rounds,
        "seconds": ctx.seconds,
        "workers": ctx.workers,
        "backend_workers": ctx.backend_workers,
        "idle_pairs": ctx.idle_pairs,
        "pin": ctx.pin,
        "elapsed_s": round(elapsed, 1),
        "argv": " ".join(["bench/compare"] +
                         [_shown(w) for w in (args._argv if hasattr(args, "_argv") else [])]),
        # What --report-only needs to render this run again from runs.csv.
        # Paths only name the binaries here: --report-only never runs them.
        "ctx": {k: _shown(getattr(ctx, k, None)) for k in CTX_KEYS},
        "skipped": ctx.skipped,
        "failures": ctx.failures,
    }


CTX_KEYS = ("run_id", "rounds", "seconds", "workers", "backend_workers", "rr_conns",
            "idle_pairs", "idle_hold", "sweep_chunks", "sweep_relays", "sweep_tool",
            "pin", "nice", "quick", "zrelayd", "zload", "zrelayd_has_tls",
            "zrelayd_has_config", "zrelayd_missing", "zload_missing")


def _median(vals):
    vals = [float(v) for v in vals if v not in ("", None)]
    return statistics.median(vals) if vals else None


def summarize(records):
    """{(scenario, param, relay): {key: median, 'n': ok runs, 'spread': %}}."""
    groups = {}
    for r in records:
        groups.setdefault((r["scenario"], str(r.get("param") or ""), r["relay"]), []).append(r)
    out = {}
    for k, rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        s = {"n": len(ok), "failed": len(rs) - len(ok),
             "errors": [r["error"] for r in rs if r["status"] != "ok"]}
        for key in ("gbit_per_s", "rps", "conns_per_s", "p50_us", "p90_us", "p99_us",
                    "p999_us", "relay_cpu_s", "relay_cpu_pct", "cpu_s_per_gb",
                    "cpu_us_per_req", "cpu_us_per_conn", "kib_per_pair", "pss_kib_per_pair",
                    "fds_per_pair", "errors", "foreign_cpu_pct", "retransmits",
                    "backend2_pct", "cpu_us_per_dgram", "loss_pct", "lost", "late",
                    "mismatches", "unreachable", "client_cpu_us_per_req"):
            if key == "errors":
                m = _median([r.get("errors", "") for r in ok])
                s["load_errors"] = m
                continue
            m = _median([r.get(key, "") for r in ok])
            if m is not None:
                s[key] = m
        out[k] = s
    return out


def _spread(records, scen, param, relay, metric):
    vals = [float(r[metric]) for r in records if r["scenario"] == scen and
            (r.get("param") or "") == param and r["relay"] == relay and
            r["status"] == "ok" and r.get(metric, "") != ""]
    if len(vals) < 2 or not statistics.median(vals):
        return ""
    return f"±{50 * (max(vals) - min(vals)) / statistics.median(vals):.0f}%"


def _f(v, fmt):
    return "" if v is None else fmt.format(v)


def _ratio(a, b):
    if a is None or not b:
        return ""
    return f"{a / b:.2f}"


def scenario_table(scen, relays, summ, records, skipped_relays):
    """Markdown lines for one scenario (not the sweep)."""
    metric = scen.metric
    param = ""
    rows = [(r, summ.get((scen.name, param, r.name))) for r in relays if scen.accepts(r)]
    direct = summ.get((scen.name, param, "direct"), {}).get(metric)
    refs = [(summ.get((scen.name, param, n), {}).get(metric), n) for n in scen.reference]
    refs = [x for x in refs if x[0] is not None]
    if scen.name == "idle":
        ref = min(refs) if refs else (None, None)
    else:
        ref = max(refs) if refs else (None, None)
    ref_cpu_key = {"gb": "cpu_s_per_gb", "req": "cpu_us_per_req",
                   "conn": "cpu_us_per_conn"}.get(scen.cpu_per)
    ref_cpu = summ.get((scen.name, param, ref[1]), {}).get(ref_cpu_key) if ref[1] else None
    if len(scen.reference) > 1:
        fams = sorted({n.split("-")[0] for n in scen.reference})
        ref_label = "best " + "/".join(fams)
        ref_note = (f"'vs best {'/'.join(fams)}': against the best median of "
                    f"{', '.join(scen.reference)}" + (f" (here {ref[1]})." if ref[1] else "."))
    else:
        ref_label, ref_note = scen.reference[0], ""
    balanced = scen.backend_ports > 1
    lines = []
    if scen.name == "idle":
        lines.append(f"| relay | RSS KiB/pair | PSS KiB/pair | fds/pair | RSS vs {ref_label} | runs |")
        lines.append("|---|--:|--:|--:|--:|--:|")
    else:
        head = {"gbit_per_s": "Gbit/s", "rps": "req/s", "conns_per_s": "conn/s"}[metric]
        cpu_head = {"gb": "relay CPU s/GB", "req": "relay CPU us/req",
                    "conn": "relay CPU us/conn"}[scen.cpu_per]
        extra = " p50 us | p99 us | p99.9 us |" if metric == "rps" else ""
        extra += " load errors |" if metric == "conns_per_s" else ""
        extra += " backend 1/2 % |" if balanced else ""
        tail = f" {head} vs 1 backend | CPU vs 1 backend |" if balanced else ""
        lines.append(f"| relay | {head} | spread | of direct | vs {ref_label} |"
                     f"{extra} {cpu_head} | CPU vs {ref_label} |{tail} runs |")
        lines.append("|---|--:|--:|--:|--:|" + "--:|" * (extra + tail).count("|") +
                     "--:|--:|--:|")
    for relay, s in rows:
        if not s or s["n"] == 0:
            why = skipped_relays.get(relay.name)
            if why is None and s:
                why = "failed: " + (s["errors"][0] if s["errors"] else "?")[:120]
            if why is None:
                why = "not run"
            ncols = 6 if scen.name == "idle" else lines[-1].count("|") - 1
            lines.append(f"| {relay.name} | _{why}_ |" + " |" * (ncols - 2))
            continue
        runs = f"{s['n']}" + (f" (+{s['failed']} failed)" if s["failed"] else "")
        if scen.name == "idle":
            lines.append(f"| {relay.name} | {_f(s.get('kib_per_pair'), '{:.1f}')} | "
                         f"{_f(s.get('pss_kib_per_pair'), '{:.1f}')} | "
                         f"{_f(s.get('fds_per_pair'), '{:.2f}')} | "
                         f"{_ratio(s.get('kib_per_pair'), ref[0])} | {runs} |")
            continue
        val = s.get(metric)
        fmt = {"gbit_per_s": "{:.2f}", "rps": "{:,.0f}", "conns_per_s": "{:,.0f}"}[metric]
        cells = [relay.name, _f(val, fmt), _spread(records, scen.name, param, relay.name, metric),
                 "1.00" if relay.direct else _ratio(val, direct), _ratio(val, ref[0])]
        if metric == "rps":
            cells += [_f(s.get("p50_us"), "{:.0f}"), _f(s.get("p99_us"), "{:.0f}"),
                      _f(s.get("p999_us"), "{:.0f}")]
        if metric == "conns_per_s":
            cells.append(_f(s.get("load_errors"), "{:.0f}"))
        split = s.get("backend2_pct")
        if balanced:
            cells.append("" if split is None else f"{100 - split:.0f}/{split:.0f}")
        cpu = s.get(ref_cpu_key)
        cpu_fmt = "{:.3f}" if scen.cpu_per == "gb" else "{:.1f}"
        cells += ["-" if relay.direct else _f(cpu, cpu_fmt),
                  "" if relay.direct else _ratio(cpu, ref_cpu)]
        if balanced:  # a balancing relay against itself with one backend
            one = summ.get((scen.name, param, relay.base), {}) if relay.backends > 1 else {}
            cells += [_ratio(val, one.get(metric)), _ratio(cpu, one.get(ref_cpu_key))]
        cells.append(runs)
        lines.append("| " + " | ".join(cells) + " |")
    foreign = [float(r["foreign_cpu_pct"]) for r in records if r["scenario"] == scen.name
               and r["status"] == "ok" and r.get("foreign_cpu_pct", "") != ""]
    notes = [ref_note] if ref_note else []
    if balanced:
        notes.append("'backend 1/2 %': the share of requests each backend port served, "
                     "counted from the backend's log (a one-backend relay: 100/0). "
                     "'vs 1 backend': a balancing relay (-lb) against the same relay "
                     "with one backend; what balancing costs it. A balancing run where "
                     f"either port served less than {scen.MIN_SHARE:.0%} counts as failed.")
    if foreign and scen.name != "idle":
        notes.append(f"Other processes took a median {statistics.median(foreign):.0f}% "
                     f"(max {max(foreign):.0f}%) of the machine's CPU during these runs.")
    if notes:
        lines += ["", " ".join(notes)]
    return lines


# Scenarios run once per parameter (a chunk size, a connection count): one
# row per parameter, one "metric (CPU)" column per relay.
PARAM_TABLES = {
    # scenario: (parameter label, formatted parameter, metric, metric header, fmt, CPU key)
    "sweep": ("chunk", lambda c: _size(c), "gbit_per_s", "Gbit/s (CPU s/GB)", "{:.2f}",
              "cpu_s_per_gb", "{:.3f}"),
    "conc": ("connections", str, "rps", "req/s (CPU us/req)", "{:,.0f}",
             "cpu_us_per_req", "{:.1f}"),
}


def udp_table(scen, relays, summ, records, skipped_relays):
    """Markdown lines for the udp scenario: one row per (datagram size, flows,
    relay), against direct and the reference relay of the same size and flows."""
    names = [r.name for r in relays if scen.accepts(r)]
    ref_name = scen.reference[0]
    lines = [f"| datagram | flows | relay | req/s | spread | of direct | vs {ref_name} | loss % | "
             f"mismatched | p50 us | p99 us | relay CPU us/datagram | CPU vs {ref_name} | runs |",
             "|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    mismatched = False
    for param in scen.params():
        size, flows = scen.split(param)
        direct = (summ.get((scen.name, param, "direct")) or {}).get("rps")
        ref = summ.get((scen.name, param, ref_name)) or {}
        for name in names:
            s = summ.get((scen.name, param, name))
            head = f"| {size:,} B | {flows} | {name} |"
            if not s or s["n"] == 0:
                why = skipped_relays.get(name)
                if why is None and s:
                    why = "failed: " + (s["errors"][0] if s["errors"] else "?")[:120]
                lines.append(head + f" _{why or 'not run'}_ |" + " |" * 10)
                continue
            is_direct = name == "direct"
            cpu = s.get("cpu_us_per_dgram")
            if s.get("mismatches"):
                mismatched = True
            runs = f"{s['n']}" + (f" (+{s['failed']} failed)" if s["failed"] else "")
            cells = [_f(s.get("rps"), "{:,.0f}"),
                     _spread(records, scen.name, param, name, "rps"),
                     "1.00" if is_direct else _ratio(s.get("rps"), direct),
                     _ratio(s.get("rps"), ref.get("rps")),
                     _f(s.get("loss_pct"), "{:.3f}"), _f(s.get("mismatches"), "{:,.0f}"),
                     _f(s.get("p50_us"), "{:.0f}"), _f(s.get("p99_us"), "{:.0f}"),
                     "-" if is_direct else _f(cpu, "{:.2f}"),
                     "" if is_direct else _ratio(cpu, ref.get("cpu_us_per_dgram")), runs]
            lines.append(head + " " + " | ".join(cells) + " |")
    notes = ["req/s counts requests answered byte-exact; 'loss %': requests with no answer "
             f"within {scen.reply_timeout}, over the requests that ended (answered or lost); "
             "'mismatched': datagrams a flow received that were none of its requests (another "
             "flow's, or corrupt), a median count per run. Relay CPU per datagram: over the "
             "datagrams the client sent plus those it received."]
    if mismatched:
        notes.append("Mismatched datagrams mean the relay delivered datagrams to the wrong "
                     "client (or damaged them); the requests they belonged to count as lost.")
    foreign = [float(r["foreign_cpu_pct"]) for r in records if r["scenario"] == scen.name
               and r["status"] == "ok" and r.get("foreign_cpu_pct", "") != ""]
    if foreign:
        notes.append(f"Other processes took a median {statistics.median(foreign):.0f}% "
                     f"(max {max(foreign):.0f}%) of the machine's CPU during these runs.")
    return lines + ["", " ".join(notes)]


def param_values(scen, ctx):
    return ctx.sweep_chunks if scen.name == "sweep" else scen.params()


def param_table(scen, relays, summ, ctx):
    names = [r.name for r in relays if scen.accepts(r)
             and any(k[0] == scen.name and k[2] == r.name for k in summ)]
    if not names:
        return []
    label, shown, metric, header, fmt, cpu_key, cpu_fmt = PARAM_TABLES[scen.name]
    lines = [f"| {label} | " + " | ".join(f"{n} {header}" for n in names) + " |",
             "|--:|" + "--:|" * len(names)]
    for value in param_values(scen, ctx):
        cells = [shown(value)]
        for n in names:
            s = summ.get((scen.name, str(value), n))
            if not s or not s["n"]:
                cells.append("")
                continue
            cpu = s.get(cpu_key)
            cells.append(fmt.format(s[metric]) +
                         (" (" + cpu_fmt.format(cpu) + ")" if cpu is not None else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _size(n):
    n = int(n)
    for unit, div in (("M", 1 << 20), ("k", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


COMPACT_PLAIN = [
    # (header, scenario, key, format, show fraction of direct)
    ("bulk 1 stream Gbit/s", "bulk1", "gbit_per_s", "{:.1f}", True),
    ("bulk 4 streams Gbit/s", "bulk4", "gbit_per_s", "{:.1f}", True),
    ("CPU s/GB (1 stream)", "bulk1", "cpu_s_per_gb", "{:.2f}", False),
    ("rr req/s (wrk)", "rr", "rps", "{:,.0f}", True),
    ("rr p99 us", "rr", "p99_us", "{:,.0f}", False),
    ("CPU us/req", "rr", "cpu_us_per_req", "{:.1f}", False),
    ("conn/s (wrk)", "connect", "conns_per_s", "{:,.0f}", True),
    ("CPU us/conn", "connect", "cpu_us_per_conn", "{:.0f}", False),
    ("idle KiB/pair", "idle", "kib_per_pair", "{:.1f}", False),
    ("fds/pair", "idle", "fds_per_pair", "{:.1f}", False),
]
COMPACT_TLS = [
    ("TLS rr req/s", "tls-rr", "rps", "{:,.0f}", True),
    ("CPU us/req", "tls-rr", "cpu_us_per_req", "{:.1f}", False),
    ("handshakes/s", "tls-hs", "conns_per_s", "{:,.0f}", True),
    ("CPU us/handshake", "tls-hs", "cpu_us_per_conn", "{:.0f}", False),
    ("TLS bulk Gbit/s", "tls-bulk", "gbit_per_s", "{:.2f}", True),
    ("CPU s/GB", "tls-bulk", "cpu_s_per_gb", "{:.2f}", False),
]


def compact_table(scens, relays, summ, skipped, tls):
    """One row per relay, the headline number of every scenario: the table
    BENCHMARKS.md shows. Cells read 'value (fraction of direct)'."""
    cols = COMPACT_TLS if tls else COMPACT_PLAIN
    cols = [c for c in cols if any(k[0] == c[1] for k in summ)]
    if not cols:
        return []
    shown = [s for s in scens if s.name in {c[1] for c in cols}]
    lines = ["| relay | " + " | ".join(c[0] for c in cols) + " |",
             "|---|" + "--:|" * len(cols)]
    for r in relays:
        # Balancing relays run in their own scenario only: no row here.
        if r.tls != tls or not any(s.accepts(r) for s in shown):
            continue
        cells, any_val = [], False
        for head, scen, key, fmt, frac in cols:
            s = summ.get((scen, "", r.name))
            v = s.get(key) if s and s["n"] else None
            if v is None:
                cells.append("")
                continue
            any_val = True
            cell = fmt.format(v)
            d = (summ.get((scen, "", "direct")) or {}).get(key)
            if frac and d and not r.direct:
                cell += f" ({v / d:.2f})"
            cells.append(cell)
        if not any_val:
            why = skipped.get(r.name, "not run")
            cells = [f"_not run: {why}_"] + [""] * (len(cols) - 1)
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(ctx, scens, relays, summ, meta, png_names):
    skipped = dict(ctx.skipped)
    L = [f"# bench/compare results: {meta['date']}", ""]
    L.append(f"Machine: {meta['nproc']} CPUs, {meta['cpu']}, kernel {meta['kernel']}; "
             f"checkout {meta['commit']}; {meta.get('binaries', '')}"
             + (f" ({meta['label']})" if meta.get("label") else "")
             + f". {meta['rounds']} alternating rounds per scenario "
             f"(medians shown; spread = half the min-max range over the median); "
             f"relays use {meta['workers']} workers/threads; "
             + ("relay pinned to CPU 1, load and backend to CPU 0. " if meta["pin"] else
                "no CPU pinning (relay, load and backend share both cores). ")
             + f"Whole run: {meta['elapsed_s'] / 60:.1f} min.")
    L.append("")
    L.append("Ratios: 'of direct' = result / direct (client straight to the backend); "
             "'vs X' = result / X's median (for CPU: relay CPU / X's relay CPU, lower is "
             "cheaper). Relay CPU = utime+stime of the relay's whole process tree (threads, "
             "nginx workers, socat children) from /proc, read before and after each run.")
    L.append("")
    L.append("## Summary (medians; in parentheses: fraction of direct)")
    L.append("")
    L += compact_table(scens, relays, summ, skipped, tls=False)
    L.append("")
    tls_lines = compact_table(scens, relays, summ, skipped, tls=True)
    if tls_lines:
        L += tls_lines
        L.append("")
    done = set()
    for scen in scens:
        if scen.name in done:
            continue
        done.add(scen.name)
        have = any(k[0] == scen.name for k in summ)
        if not have:
            continue
        L.append(f"## {scen.name}: {scen.title}")
        L.append("")
        L.append(scen.measures + ".")
        L.append("")
        if scen.name in PARAM_TABLES:
            L += param_table(scen, relays, summ, ctx)
        elif scen.name == "udp":
            L += udp_table(scen, relays, summ, ctx.records, skipped)
        else:
            L += scenario_table(scen, relays, summ, ctx.records, skipped)
        L.append("")
    foreign = [float(r["foreign_cpu_pct"]) for r in ctx.records
               if r.get("foreign_cpu_pct", "") != ""]
    if foreign:
        L.append(f"Other processes on the machine used a median {statistics.median(foreign):.1f}% "
                 f"(max {max(foreign):.1f}%) of the CPU during the runs (machine busy time "
                 "minus relay, backend and load tools).")
        L.append("")
    if png_names:
        L.append("Plots: " + ", ".join(f"[{n}]({n})" for n in png_names))
        L.append("")
    if ctx.skipped:
        L.append("## Not run")
        L.append("")
        for name, why in ctx.skipped:
            L.append(f"- {name}: {why}")
        L.append("")
    if ctx.failures:
        L.append("## Failures")
        L.append("")
        for scen, relay, msg, tail in ctx.failures[:20]:
            L.append(f"- {scen} / {relay}: {msg}")
            if tail.strip():
                L.append("")
                L.append("  ```")
                L += ["  " + l for l in tail.strip().splitlines()[-12:]]
                L.append("  ```")
        L.append("")
    L.append("Versions: " + "; ".join(f"{k}: {v}" for k, v in meta["versions"].items()))
    L.append("")
    return "\n".join(L)


def write_summary_csv(path, summ):
    keys = ["gbit_per_s", "rps", "conns_per_s", "p50_us", "p90_us", "p99_us", "p999_us",
            "relay_cpu_pct", "cpu_s_per_gb", "cpu_us_per_req", "cpu_us_per_conn",
            "kib_per_pair", "pss_kib_per_pair", "fds_per_pair", "foreign_cpu_pct",
            "backend2_pct", "cpu_us_per_dgram", "loss_pct", "mismatches"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "param", "relay", "runs", "failed"] + keys)
        for (scen, param, relay), s in summ.items():
            w.writerow([scen, param, relay, s["n"], s["failed"]] +
                       [("" if s.get(k) is None else f"{s[k]:.6g}") for k in keys])


# ----------------------------------------------------------------- plots

def _q(s):
    return '"' + s.replace('"', "'") + '"'


def _val(s, key):
    v = s.get(key) if s else None
    return "?" if v is None else f"{v:.6g}"


def write_plots(ctx, scens, relays, summ, outdir):
    """Write gnuplot data + scripts under outdir/plots and render PNGs; returns names."""
    if not shutil.which("gnuplot"):
        return []
    pdir = os.path.join(outdir, "plots")
    os.makedirs(pdir, exist_ok=True)
    made = []
    common = ("set terminal pngcairo size 1100,520 font 'sans,10'\n"
              "set datafile missing '?'\nset style data histograms\n"
              "set style histogram clustered gap 1\nset style fill solid 0.85 border -1\n"
              "set boxwidth 0.9\nset grid ytics\nset xtics rotate by -30\n"
              "set key above horizontal\n")
    plain = [r.name for r in relays if not r.tls]

    def have(scen, names=None):
        return [n for n in (names or plain) if (summ.get((scen, "", n)) or {}).get("n")]

    # bulk: throughput and CPU per GB, 1 and 4 streams
    names = sorted(set(have("bulk1") + have("bulk4")), key=plain.index)
    if names:
        with open(os.path.join(pdir, "bulk.dat"), "w") as f:
            f.write("# " + "relay bulk1_gbit bulk4_gbit bulk1_cpu bulk4_cpu\n")
            for n in names:
                a, b = summ.get(("bulk1", "", n)), summ.get(("bulk4", "", n))
                f.write(f"{_q(n)} {_val(a, 'gbit_per_s')} {_val(b, 'gbit_per_s')} "
                        f"{_val(a, 'cpu_s_per_gb')} {_val(b, 'cpu_s_per_gb')}\n")
        _gnuplot(pdir, "bulk", common + (
            "set output 'bulk.png'\nset multiplot layout 1,2 title 'Bulk (iperf3), medians'\n"
            "set ylabel 'Gbit/s'\nset title 'throughput'\nset yrange [0:*]\n"
            "plot 'bulk.dat' using 2:xtic(1) title '1 stream', '' using 3 title '4 streams'\n"
            "set ylabel 'relay CPU s per GB'\nset title 'relay CPU per GB moved (direct: none)'\n"
            "plot 'bulk.dat' using 4:xtic(1) title '1 stream', '' using 5 title '4 streams'\n"
            "unset multiplot\n"), made, "bulk.png")

    # rr latency percentiles
    for scen, png in (("rr", "rr_latency.png"), ("tls-rr", "tls_rr_latency.png")):
        names = [n for n in [r.name for r in relays if r.tls == (scen == "tls-rr")]
                 if (summ.get((scen, "", n)) or {}).get("n")]
        if not names:
            continue
        dat = png.replace(".png", ".dat")
        with open(os.path.join(pdir, dat), "w") as f:
            f.write("# " + "relay p50 p90 p99 p999 rps\n")
            for n in names:
                s = summ[(scen, "", n)]
                f.write(f"{_q(n)} {_val(s, 'p50_us')} {_val(s, 'p90_us')} {_val(s, 'p99_us')} "
                        f"{_val(s, 'p999_us')} {_val(s, 'rps')}\n")
        _gnuplot(pdir, png[:-4], common + (
            f"set output '{png}'\nset title '{scen}: wrk latency percentiles (50 conns, "
            "128 B), medians of runs'\nset ylabel 'microseconds'\nset logscale y\n"
            "set yrange [10:*]\n"
            f"plot '{dat}' using 2:xtic(1) title 'p50', '' using 3 title 'p90', "
            "'' using 4 title 'p99', '' using 5 title 'p99.9'\n"), made, png)

    # idle: KiB per pair
    names = [n for n in plain if (summ.get(("idle", "", n)) or {}).get("n")]
    if names:
        with open(os.path.join(pdir, "idle.dat"), "w") as f:
            f.write("# " + "relay rss pss fds\n")
            for n in names:
                s = summ[("idle", "", n)]
                f.write(f"{_q(n)} {_val(s, 'kib_per_pair')} {_val(s, 'pss_kib_per_pair')} "
                        f"{_val(s, 'fds_per_pair')}\n")
        _gnuplot(pdir, "idle", common + (
            "set output 'idle.png'\n"
            f"set title 'Idle pairs ({ctx.idle_pairs}): relay memory per pair (log scale)'\n"
            "set ylabel 'KiB per pair'\nset logscale y\n"
            "plot 'idle.dat' using ($2>0.1?$2:0.1):xtic(1) title 'RSS', "
            "'' using ($3>0.1?$3:0.1) title 'PSS'\n"), made, "idle.png")

    # overview: fraction of direct
    cols = [s for s in ("bulk1", "bulk4", "rr", "connect", "tls-rr", "tls-hs", "tls-bulk")
            if any(k[0] == s for k in summ)]
    metric = {s.name: s.metric for s in scens}
    names = []
    for r in relays:
        if not r.direct and r.name not in names and any(
                (summ.get((c, "", r.name)) or {}).get("n") for c in cols):
            names.append(r.name)
    if names and cols:
        with open(os.path.join(pdir, "overview.dat"), "w") as f:
            f.write("# " + "relay " + " ".join(cols) + "\n")
            for n in names:
                vals = []
                for c in cols:
                    d = (summ.get((c, "", "direct")) or {}).get(metric[c])
                    v = (summ.get((c, "", n)) or {}).get(metric[c])
                    vals.append("?" if v is None or not d else f"{v / d:.4g}")
                f.write(f"{_q(n)} " + " ".join(vals) + "\n")
        plot = ", ".join(f"'' using {i + 2}{':xtic(1)' if i == 0 else ''} title '{c}'"
                         for i, c in enumerate(cols))
        _gnuplot(pdir, "overview", common + (
            "set output 'overview.png'\nset title 'Result as a fraction of direct "
            "(client straight to backend), medians'\nset ylabel 'fraction of direct'\n"
            "set yrange [0:*]\n"
            f"plot 'overview.dat' {plot[3:]}\n"), made, "overview.png")

    # chunk sweep, and request/response as concurrency grows
    sw = [n for n in ctx.sweep_relays
          if any(k[0] == "sweep" and k[2] == n and summ[k]["n"] for k in summ)]
    if sw:
        tool = ("zrelay-load bulk --chunk" if getattr(ctx, "sweep_tool", "") == "zrelay-load"
                else "iperf3 -l")
        _param_plot(pdir, "sweep", ctx.sweep_chunks, sw, summ, made,
                    f"Chunk-size sweep ({tool}, 1 stream), relay CPU: none for direct",
                    "write size", "Gbit/s", "relay CPU s per GB")
    conc = next((sc for sc in scens if sc.name == "conc"), None)
    cn = [r.name for r in relays if any(k[0] == "conc" and k[2] == r.name and summ[k]["n"]
                                        for k in summ)]
    if conc and cn:
        _param_plot(pdir, "conc", conc.params(), cn, summ, made,
                    "Request/response as concurrency grows (zrelay-load rr, 128 B)",
                    "connections", "req/s", "relay CPU us per request")
    return made


def _param_plot(pdir, name, values, names, summ, made, title, xlabel, y1, y2):
    """Two panels over a scenario's parameter (log x): its metric and the
    relay's CPU, one line per relay (no CPU line for direct)."""
    _, shown, metric, _, _, cpu_key, _ = PARAM_TABLES[name]
    with open(os.path.join(pdir, name + ".dat"), "w") as f:
        f.write("# " + "param " + " ".join(f"{n}_metric {n}_cpu" for n in names) + "\n")
        for v in values:
            row = [str(v)]
            for n in names:
                s = summ.get((name, str(v), n))
                row += [_val(s, metric), _val(s, cpu_key)]
            f.write(" ".join(row) + "\n")
    xtics = ", ".join(f"'{shown(v)}' {v}" for v in values)
    p1 = ", ".join(f"'{name}.dat' using 1:{2 + 2 * i} with linespoints lw 2 title '{n}'"
                   for i, n in enumerate(names))
    p2 = ", ".join(f"'{name}.dat' using 1:{3 + 2 * i} with linespoints lw 2 title '{n}'"
                   for i, n in enumerate(names) if n != "direct")
    _gnuplot(pdir, name, (
        "set terminal pngcairo size 1100,480 font 'sans,10'\nset datafile missing '?'\n"
        f"set output '{name}.png'\nset multiplot layout 1,2 title '{title}'\n"
        "set logscale x 2\nset grid\n"
        f"set xtics ({xtics})\nset xlabel '{xlabel}'\nset key bottom right\n"
        f"set ylabel '{y1}'\nset yrange [0:*]\nplot {p1}\n"
        f"set ylabel '{y2}'\nset key top right\nplot {p2}\n"
        "unset multiplot\n"), made, name + ".png")


def _gnuplot(pdir, name, script, made, png):
    path = os.path.join(pdir, name + ".gp")
    with open(path, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", name + ".gp"], cwd=pdir, capture_output=True, text=True,
                       timeout=60)
    if r.returncode == 0 and os.path.exists(os.path.join(pdir, png)):
        made.append(png)
    else:
        print(f"warning: gnuplot {name}.gp failed: {r.stderr.strip()[:300]}")


def write_all(ctx, scens, relays, meta, rawdir, publish_dir):
    with open(os.path.join(rawdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    summ = summarize(ctx.records)
    pngs = write_plots(ctx, scens, relays, summ, rawdir)
    for png in pngs:
        shutil.move(os.path.join(rawdir, "plots", png), os.path.join(rawdir, png))
    md = render_markdown(ctx, scens, relays, summ, meta, pngs)
    with open(os.path.join(rawdir, "report.md"), "w") as f:
        f.write(md)
    write_summary_csv(os.path.join(rawdir, "summary.csv"), summ)
    if publish_dir:
        shutil.copy(os.path.join(rawdir, "report.md"), os.path.join(publish_dir, "latest.md"))
        shutil.copy(os.path.join(rawdir, "summary.csv"), os.path.join(publish_dir, "latest.csv"))
        shutil.copy(os.path.join(rawdir, "runs.csv"), os.path.join(publish_dir, "latest-runs.csv"))
        shutil.copy(os.path.join(rawdir, "meta.json"), os.path.join(publish_dir, "latest-meta.json"))
        for png in pngs:
            shutil.copy(os.path.join(rawdir, png), os.path.join(publish_dir, png))
