"""Processes the harness starts: start, wait until listening, stop by PID.

Only processes started here (and their descendants, found through /proc and
checked against their start time so a reused PID is never hit) are ever
signalled. Nothing is looked up by name.
"""

import os
import random
import signal
import socket
import subprocess
import time

import procfs

_live = []  # every Proc started and not yet stopped
NICE = 0    # niceness for every peer and load tool (bench/compare --nice)


def set_group_nice(pid):
    """Give the autogroup of PID (its own session) the niceness NICE.

    Peers start in their own session, and with sched_autogroup each session
    is a scheduling group: a plain `nice` would only weigh a process against
    its own session. Setting the group's nice is what lets --nice outweigh
    other sessions' work (builds) on a shared machine.
    """
    if NICE:
        try:
            with open(f"/proc/{pid}/autogroup", "w") as f:
                f.write(str(NICE))
        except OSError:
            pass  # no autogroup support: the process nice still applies


def wrap(argv, cpus=None):
    """argv behind `nice` and `taskset` as asked; both exec, so the PID stays."""
    pre = ["nice", "-n", str(NICE)] if NICE else []
    if cpus:
        pre += ["taskset", "-c", cpus]
    return pre + list(argv)


class StartError(Exception):
    """A peer failed to start; .log_tail holds the end of its log."""

    def __init__(self, msg, log_tail=""):
        super().__init__(msg)
        self.log_tail = log_tail


class Proc:
    """One long-running peer (relay or backend) started by the harness."""

    def __init__(self, name, argv, log_path, cpus=None, cwd=None):
        self.name = name
        self.argv = wrap(argv, cpus)
        self.log_path = log_path
        self.cwd = cwd
        self.popen = None
        self.pid = None
        self.known = {}  # pid -> start time, for every descendant seen

    def start(self):
        self._log = open(self.log_path, "ab")
        self._log.write(("$ " + " ".join(self.argv) + "\n").encode())
        self._log.flush()
        try:
            # A new session keeps a terminal's Ctrl-C away from the peers, so
            # the harness alone decides how and when they stop.
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                stderr=subprocess.STDOUT, cwd=self.cwd, start_new_session=True)
        except OSError as e:
            self._log.close()
            raise StartError(f"{self.name}: cannot exec {self.argv[0]}: {e}")
        self.pid = self.popen.pid
        set_group_nice(self.pid)
        _live.append(self)
        return self

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def remember_tree(self):
        """Record the current descendants so stop() can reach them later."""
        if self.alive():
            for pid in procfs.tree(self.pid):
                st = procfs.start_time(pid)
                if st is not None:
                    self.known.setdefault(pid, st)

    def wait_listening(self, port, timeout=8.0, settle=0.1, udp=False):
        """Wait until a TCP socket LISTENs on port (udp: a UDP socket is
        bound to it, unconnected) while this process lives.

        Checks the kernel's socket tables instead of connecting, so a probe
        never reaches (and never uses up) a backend such as `iperf3 -s -1`.
        The port was checked free before, so a listener there is ours.
        """
        bound = procfs.udp_bound_ports if udp else procfs.listening_ports
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise StartError(
                    f"{self.name} exited with status {self.popen.returncode} "
                    f"before listening on {port}", self.log_tail())
            if port in bound():
                time.sleep(settle)  # let forked workers / per-worker sockets come up
                if not self.alive():
                    continue
                self.remember_tree()
                return
            time.sleep(0.02)
        raise StartError(f"{self.name} not listening on {port} after {timeout:.0f}s",
                         self.log_tail())

    def log_tail(self, nbytes=1500):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - nbytes))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, grace=5.0):
        """SIGTERM the process, then SIGKILL it and its known descendants."""
        if self.popen is None:
            return
        self.remember_tree()
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _kill_if_same(self.pid, self.known.get(self.pid))
                self.popen.wait(timeout=5)
        # Descendants (nginx workers, socat children) normally exit with the
        # parent; give them a moment, then kill whatever is left by PID.
        deadline = time.monotonic() + 2.0
        for pid, st in self.known.items():
            if pid == self.pid:
                continue
            while procfs.start_time(pid) == st and time.monotonic() < deadline:
                time.sleep(0.02)
            _kill_if_same(pid, st)
        if self in _live:
            _live.remove(self)
        self._log.close()
        self.popen = None


def _kill_if_same(pid, start):
    if start is not None and procfs.start_time(pid) == start:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def set_affinity(root, cpus):
    """Move every thread of root's process tree to the CPU list "cpus"."""
    mask = {int(c) for c in cpus.split(",")}
    for pid in procfs.tree(root):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, mask)
            except OSError:
                pass


def stop_all():
    """Stop every peer still running (called from finally / signal handlers)."""
    for p in list(reversed(_live)):
        try:
            p.stop(grace=3.0)
        except Exception as e:  # keep going: the others must stop too
            print(f"warning: stopping {p.name} (pid {p.pid}): {e}")


class PortAllocator:
    """Hands out TCP ports that are free now on 127.0.0.1 (with udp=True:
    free for UDP too).

    Ports come from below the ephemeral range (32768+ here) so a client's
    outgoing connection never holds one, and are never handed out twice in a
    run.
    """

    def __init__(self, lo=21000, hi=32000):
        self.lo, self.hi = lo, hi
        self.used = set()
        self.next = random.randrange(lo, hi)

    def get(self, udp=False):
        listening = procfs.listening_ports()
        for _ in range(self.hi - self.lo):
            port = self.next
            self.next = self.lo if self.next + 1 >= self.hi else self.next + 1
            if port in self.used or port in listening:
                continue
            if _bindable(port) and (not udp or _bindable(port, socket.SOCK_DGRAM)):
                self.used.add(port)
                return port
        raise RuntimeError("no free TCP port in %d-%d" % (self.lo, self.hi))


def _bindable(port, kind=socket.SOCK_STREAM):
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        s = socket.socket(family, kind)
        try:
            if kind == socket.SOCK_STREAM:  # TIME_WAIT leftovers do not count
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
        except OSError:
            if family == socket.AF_INET:
                return False
        finally:
            s.close()
    return True


def run_bounded(argv, timeout, log_path=None, cpus=None):
    """Run a load tool to completion, killing it (by PID) after timeout.

    Returns (returncode or None on timeout, stdout text). stderr goes to the
    log (or is merged into stdout when there is no log).
    """
    argv = wrap(argv, cpus)
    log = open(log_path, "ab") if log_path else None
    try:
        if log:
            log.write(("$ " + " ".join(argv) + "\n").encode())
            log.flush()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=log if log else subprocess.STDOUT,
                             start_new_session=True)
        set_group_nice(p.pid)
        try:
            out, _ = p.communicate(timeout=timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            p.kill()  # Popen.kill signals exactly this child's PID
            out, _ = p.communicate()
            rc = None
        except BaseException:  # Ctrl-C / SIGTERM: never leave the load running
            p.kill()
            p.wait()
            raise
        text = out.decode("utf-8", "replace")
        if log:
            log.write(out)
            log.write(f"[exit {rc}]\n".encode())
        return rc, text
    finally:
        if log:
            log.close()
