"""IMAP clients for zrelay-imap's tests, one scenario per subcommand.

Exits 0 when the scenario went as expected; otherwise prints what differed
and exits 1. Every socket has a timeout, so nothing here waits forever.
"""
import argparse
import concurrent.futures
import imaplib
import socket
import ssl
import sys

import imap_test_data

TIMEOUT = 20


class Failed(Exception):
    pass


def expect(condition, what):
    if not condition:
        raise Failed(what)


def address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def tls_context(options):
    context = ssl.create_default_context(cafile=options.ca)
    context.check_hostname = False  # the certificate names localhost, we dial 127.0.0.1
    return context


def connect(options):
    """An imaplib client over TLS: STARTTLS on --plain, or implicit on --tls."""
    if options.via == "tls":
        host, port = address(options.tls)
        return imaplib.IMAP4_SSL(host, port, ssl_context=tls_context(options), timeout=TIMEOUT)
    host, port = address(options.plain)
    client = imaplib.IMAP4(host, port, timeout=TIMEOUT)
    expect("STARTTLS" in client.capabilities, "no STARTTLS in %r" % (client.capabilities,))
    expect("LOGINDISABLED" in client.capabilities,
           "no LOGINDISABLED before STARTTLS in %r" % (client.capabilities,))
    client.starttls(ssl_context=tls_context(options))
    expect("LOGINDISABLED" not in client.capabilities,
           "LOGINDISABLED after STARTTLS in %r" % (client.capabilities,))
    return client


def session(options, user, password, fetch_size, append_size):
    """Logs in, checks FETCH's message byte for byte, APPENDs one."""
    client = connect(options)
    typ, data = client.login(user, password)
    expect(typ == "OK", "LOGIN %s: %r" % (user, data))
    typ, data = client.select("INBOX")
    expect(typ == "OK" and data == [b"1"], "SELECT: %s %r" % (typ, data))
    typ, data = client.fetch("1", "(BODY[])")
    expect(typ == "OK", "FETCH: %s" % typ)
    expected = imap_test_data.message(fetch_size)
    expect(data[0][1] == expected, "FETCH: %d bytes, sha256 %s, expected %d, %s" % (
        len(data[0][1]), imap_test_data.digest(data[0][1]), len(expected),
        imap_test_data.digest(expected)))
    typ, data = client.append("INBOX", None, None, imap_test_data.message(append_size))
    expect(typ == "OK", "APPEND: %s %r" % (typ, data))
    typ, data = client.noop()
    expect(typ == "OK", "NOOP: %s" % typ)
    typ, data = client.logout()
    expect(typ == "BYE", "LOGOUT: %s %r" % (typ, data))


def raw_tls(options):
    """A raw socket speaking TLS, past STARTTLS when --via starttls."""
    context = tls_context(options)
    if options.via == "tls":
        sock = socket.create_connection(address(options.tls), timeout=TIMEOUT)
        sock = context.wrap_socket(sock)
        reader = sock.makefile("rb")
        expect(reader.readline().startswith(b"* OK"), "no greeting")
        return sock, reader
    sock = socket.create_connection(address(options.plain), timeout=TIMEOUT)
    reader = sock.makefile("rb")
    expect(reader.readline().startswith(b"* OK"), "no greeting")
    sock.sendall(b"s1 STARTTLS\r\n")
    answer = reader.readline()
    expect(answer.startswith(b"s1 OK"), "STARTTLS: %r" % answer)
    sock = context.wrap_socket(sock)
    return sock, sock.makefile("rb")


def read_until_tagged(reader, tag):
    """Lines up to and including the one tagged `tag` (at most 100)."""
    lines = []
    for _ in range(100):
        line = reader.readline()
        expect(line, "connection closed before %s; got %r" % (tag, lines))
        lines.append(line)
        if line.startswith(tag.encode() + b" "):
            return lines
    raise Failed("no %s answer in %r" % (tag, lines))


def run_session(options):
    session(options, options.user, options.password, options.fetch_size, options.append_size)


def run_pipelined(options):
    """LOGIN and the commands behind it in one write: none may be lost."""
    sock, reader = raw_tls(options)
    quoted = options.password.replace("\\", "\\\\").replace('"', '\\"')
    sock.sendall(b'p1 LOGIN %s "%s"\r\np2 NOOP\r\np3 SELECT INBOX\r\np4 LOGOUT\r\n'
                 % (options.user.encode(), quoted.encode()))
    for tag in ("p1", "p2", "p3", "p4"):
        lines = read_until_tagged(reader, tag)
        expect(lines[-1].startswith(tag.encode() + b" OK"), "%s: %r" % (tag, lines))
    sock.close()


def run_literal_login(options):
    """LOGIN with a synchronizing literal user name and a LITERAL+ password."""
    sock, reader = raw_tls(options)
    user, password = options.user.encode(), options.password.encode()
    sock.sendall(b"l1 LOGIN {%d}\r\n" % len(user))
    answer = reader.readline()
    expect(answer.startswith(b"+"), "no continuation for a literal: %r" % answer)
    sock.sendall(user + b" {%d+}\r\n" % len(password) + password + b"\r\nl2 NOOP\r\n")
    for tag in ("l1", "l2"):
        lines = read_until_tagged(reader, tag)
        expect(lines[-1].startswith(tag.encode() + b" OK"), "%s: %r" % (tag, lines))
    sock.close()


def run_refused_then_ok(options):
    """A LOGIN that must fail with NO, then a good one on the same connection."""
    client = connect(options)
    try:
        typ, data = client.login(options.user, options.password)
        raise Failed("LOGIN %s: %s %r, expected NO" % (options.user, typ, data))
    except imaplib.IMAP4.error as e:
        expect("NO" in str(e) or "AUTHENTICATIONFAILED" in str(e) or "UNAVAILABLE" in str(e),
               "LOGIN %s: %s" % (options.user, e))
    typ, data = client.login(options.then_user, options.then_password)
    expect(typ == "OK", "LOGIN %s after a refused one: %r" % (options.then_user, data))
    typ, data = client.select("INBOX")
    expect(typ == "OK", "SELECT: %s %r" % (typ, data))
    client.logout()


def run_before_starttls(options):
    """On the plain port: LOGIN refused, other commands refused, LOGOUT works."""
    sock = socket.create_connection(address(options.plain), timeout=TIMEOUT)
    reader = sock.makefile("rb")
    greeting = reader.readline()
    expect(b"STARTTLS" in greeting and b"LOGINDISABLED" in greeting, "greeting %r" % greeting)
    sock.sendall(b'b1 LOGIN %s "%s"\r\n' % (options.user.encode(), options.password.encode()))
    lines = read_until_tagged(reader, "b1")
    expect(lines[-1].startswith((b"b1 NO", b"b1 BAD")), "LOGIN before STARTTLS: %r" % lines)
    sock.sendall(b"b2 SELECT INBOX\r\n")
    lines = read_until_tagged(reader, "b2")
    expect(lines[-1].startswith((b"b2 NO", b"b2 BAD")), "SELECT before LOGIN: %r" % lines)
    sock.sendall(b"b3 CAPABILITY\r\n")
    lines = read_until_tagged(reader, "b3")
    expect(lines[0].startswith(b"* CAPABILITY") and b"STARTTLS" in lines[0],
           "CAPABILITY: %r" % lines)
    sock.sendall(b"b4 LOGOUT\r\n")
    lines = read_until_tagged(reader, "b4")
    expect(lines[0].startswith(b"* BYE") and lines[-1].startswith(b"b4 OK"), "LOGOUT: %r" % lines)
    expect(reader.readline() == b"", "still open after LOGOUT")
    sock.close()


def run_starttls_injection(options):
    """Plaintext sent behind STARTTLS in the same write is never run as a
    command: the gateway reads it as the start of the TLS handshake, which
    then fails."""
    sock = socket.create_connection(address(options.plain), timeout=TIMEOUT)
    reader = sock.makefile("rb")
    expect(reader.readline().startswith(b"* OK"), "no greeting")
    sock.sendall(b"s1 STARTTLS\r\ns2 CAPABILITY\r\n")
    answer = reader.readline()
    expect(answer.startswith(b"s1 OK"), "STARTTLS: %r" % answer)
    rest = b""
    for _ in range(100):
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    expect(b"s2" not in rest and b"CAPABILITY" not in rest,
           "the injected command was answered: %r" % rest)
    sock.close()


def run_idle(options):
    """A client that says nothing after the greeting is hung up on."""
    sock = socket.create_connection(address(options.plain), timeout=TIMEOUT)
    reader = sock.makefile("rb")
    expect(reader.readline().startswith(b"* OK"), "no greeting")
    expect(reader.readline() == b"", "a silent client still open")
    sock.close()


def run_many(options):
    """--clients sessions, at most --parallel at once; every one must pass."""
    users = [(options.user, options.password), (options.then_user, options.then_password)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=options.parallel) as pool:
        futures = [pool.submit(session, options, *users[i % 2], options.fetch_size,
                               options.append_size) for i in range(options.clients)]
        errors = [str(f.exception(timeout=120)) for f in futures if f.exception(timeout=120)]
    expect(not errors, "%d of %d clients failed, first: %s" % (len(errors), options.clients,
                                                               errors[:1]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["session", "pipelined", "literal_login",
                                             "refused_then_ok", "before_starttls", "idle",
                                             "starttls_injection",
                                             "many"])
    parser.add_argument("--plain")
    parser.add_argument("--tls")
    parser.add_argument("--via", choices=["starttls", "tls"], default="starttls")
    parser.add_argument("--ca")
    parser.add_argument("--user", default="alice")
    parser.add_argument("--password", default="")
    parser.add_argument("--then-user", default="alice")
    parser.add_argument("--then-password", default="")
    parser.add_argument("--fetch-size", type=int, default=1 << 20)
    parser.add_argument("--append-size", type=int, default=1 << 20)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=50)
    options = parser.parse_args()
    try:
        globals()["run_" + options.scenario](options)
    except (Failed, imaplib.IMAP4.error, OSError) as e:
        print("%s: %s: %s" % (options.scenario, type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
    print("%s: ok" % options.scenario)


if __name__ == "__main__":
    main()
