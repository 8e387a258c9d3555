"""Readers for /proc: process trees, CPU ticks, RSS/PSS, open fds, machine CPU.

Every function here reads only; none of them signals or changes a process.
"""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name, or None if gone.

    fields[0] is state (field 3 in proc(5)), so proc(5) field N is fields[N-3].
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2:].split()


def start_time(pid):
    """Start time of PID in clock ticks since boot (identifies it against PID reuse)."""
    f = _stat_fields(pid)
    return int(f[19]) if f else None  # field 22


def parent_map():
    """{pid: ppid} for every process visible now."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = _stat_fields(name)
            if f:
                out[int(name)] = int(f[1])  # field 4
    return out


def tree(root):
    """root and all its live descendants (list of pids, root first)."""
    if _stat_fields(root) is None:
        return []
    children = {}
    for pid, ppid in parent_map().items():
        children.setdefault(ppid, []).append(pid)
    out, unvisited = [], [root]
    while unvisited:
        pid = unvisited.pop()
        out.append(pid)
        unvisited.extend(children.get(pid, []))
    return out


def cpu_ticks(root):
    """CPU ticks used so far by root's process tree.

    Sums utime+stime+cutime+cstime of every live process in the tree. A
    process's own stat already covers all its threads (live and exited), and
    a child that exited and was reaped moves its whole time into its parent's
    cutime/cstime, so the sum is continuous when forked children (socat) come
    and go: a before/after difference is the CPU the tree used in between.
    """
    total = 0
    for pid in tree(root):
        f = _stat_fields(pid)
        if f:
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])  # 14..17
    return total


def memory_kib(root):
    """(RSS KiB, PSS KiB) summed over root's process tree."""
    rss = pss = 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return rss, pss


def fd_count(root):
    """Open file descriptors summed over root's process tree."""
    n = 0
    for pid in tree(root):
        try:
            n += len(os.listdir(f"/proc/{pid}/fd"))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return n


def machine_ticks():
    """(busy, total, steal) CPU ticks of the whole machine from /proc/stat.

    busy excludes idle, iowait and steal (time the hypervisor gave to others).
    """
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    idle = parts[3] + parts[4]  # idle + iowait
    steal = parts[7]
    total = sum(parts[:8])  # user..steal; guest time is already in user
    return total - idle - steal, total, steal


def listening_ports():
    """Set of TCP ports in LISTEN state on any address (IPv4 and IPv6).

    Asks the kernel over NETLINK_SOCK_DIAG for listening sockets only: after
    a connection-rate run /proc/net/tcp lists ~100k TIME_WAIT sockets and
    takes most of a second to read. Falls back to /proc/net/tcp.
    """
    try:
        return _listening_ports_netlink()
    except OSError:
        return _listening_ports_procfs()


def _listening_ports_netlink():
    import socket
    import struct
    NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY = 4, 20
    NLM_F_REQUEST, NLM_F_DUMP, NLMSG_DONE, NLMSG_ERROR = 1, 0x300, 3, 2
    TCP_LISTEN = 10
    ports = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as s:
        s.settimeout(2.0)
        for family in (socket.AF_INET, socket.AF_INET6):
            # inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed
            # 48-byte inet_diag_sockid.
            req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0,
                              1 << TCP_LISTEN) + bytes(48)
            hdr = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY,
                              NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
            s.send(hdr + req)
            done = False
            while not done:
                data = s.recv(65536)
                off = 0
                while off + 16 <= len(data):
                    length, mtype = struct.unpack_from("=IH", data, off)
                    if mtype == NLMSG_DONE:
                        done = True
                        break
                    if mtype == NLMSG_ERROR:
                        raise OSError("sock_diag error")
                    # inet_diag_msg: family, state, timer, retrans, then sport (be16)
                    ports.add(struct.unpack_from("!H", data, off + 16 + 4)[0])
                    off += (length + 3) & ~3
                if not data:
                    break
    return ports


def _listening_ports_procfs():
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A":  # TCP_LISTEN
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return ports


def udp_bound_ports():
    """Set of UDP ports with a socket bound and not connected (a server's
    socket: remote address all zeros), IPv4 and IPv6, from /proc/net/udp*."""
    ports = set()
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if int(cols[2].rsplit(":", 1)[1], 16) == 0:  # remote port 0: unconnected
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return ports


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])
