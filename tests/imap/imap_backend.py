"""A scripted IMAP backend for zrelay-imap's tests.

Accepts one user and password, answers CAPABILITY, LOGIN, SELECT, FETCH
(message 1 is imap_test_data.message(--message-size)), APPEND (checked
byte for byte against imap_test_data.message of its length), NOOP and
LOGOUT, and records one line per command in --record. Prints
"listening on HOST:PORT" on stderr once it accepts.
"""
import argparse
import socket
import socketserver
import ssl
import sys
import threading

import imap_test_data

MAX_LITERAL = 16 << 20
MAX_COMMANDS = 1000  # per connection; a test sends a handful
IDLE_TIMEOUT = 30    # seconds a connection may stay silent
CAPABILITY = "IMAP4rev1 LITERAL+"


class Quit(Exception):
    pass


class Session:
    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.logged_in = False

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        got = self.reader.readline(1 << 16)
        if not got.endswith(b"\r\n"):
            raise Quit()
        return got[:-2]

    def arguments(self, rest):
        """Splits what follows a command's name into atoms, quoted strings,
        parenthesized lists (as text) and literals (read here)."""
        args = []
        while rest:
            if not rest.startswith(b" "):
                raise ValueError("expected a space in %r" % rest)
            rest = rest[1:]
            if rest.startswith(b"{") and rest.endswith(b"}"):
                spec = rest[1:-1]
                sync = not spec.endswith(b"+")
                size = int(spec.rstrip(b"+"))
                if size > MAX_LITERAL:
                    raise ValueError("literal too large")
                if sync:
                    self.send("+ go ahead\r\n")
                data = self.reader.read(size)
                if len(data) != size:
                    raise Quit()
                args.append(data)
                rest = self.line()
            elif rest.startswith(b'"'):
                value = bytearray()
                i = 1
                while rest[i:i + 1] != b'"':
                    if rest[i:i + 1] == b"\\":
                        i += 1
                    if i >= len(rest):
                        raise ValueError("unterminated quoted string")
                    value += rest[i:i + 1]
                    i += 1
                args.append(bytes(value))
                rest = rest[i + 1:]
            elif rest.startswith(b"("):
                end = rest.index(b")") + 1
                args.append(rest[:end])
                rest = rest[end:]
            else:
                end = rest.find(b" ")
                end = len(rest) if end < 0 else end
                args.append(rest[:end])
                rest = rest[end:]
        return args

    def serve(self):
        self.send("* OK [CAPABILITY %s] backend %s ready\r\n" % (CAPABILITY, self.server.name))
        for _ in range(MAX_COMMANDS):
            line = self.line()
            tag, _, rest = line.partition(b" ")
            name, _, rest = rest.partition(b" ")
            tag = tag.decode()
            name = name.decode().upper()
            try:
                args = self.arguments(b" " + rest if rest else b"")
            except ValueError as e:
                self.send("%s BAD %s\r\n" % (tag, e))
                continue
            self.server.record(("%s %s" % (name, self.command(tag, name, args))).rstrip())

    def command(self, tag, name, args):
        """Answers one command; returns what the record says of it."""
        if name == "CAPABILITY":
            self.send("* CAPABILITY %s\r\n%s OK CAPABILITY completed\r\n" % (CAPABILITY, tag))
            return ""
        if name == "NOOP":
            self.send("%s OK NOOP completed\r\n" % tag)
            return ""
        if name == "LOGOUT":
            self.send("* BYE backend %s logging out\r\n%s OK LOGOUT completed\r\n"
                      % (self.server.name, tag))
            self.server.record("LOGOUT")
            raise Quit()
        if name == "LOGIN" and len(args) == 2 and not self.logged_in:
            user = args[0].decode("utf-8", "replace")
            if args[0] == self.server.user and args[1] == self.server.password:
                self.logged_in = True
                self.send("* CAPABILITY %s\r\n%s OK LOGIN completed\r\n" % (CAPABILITY, tag))
                return "%s ok" % user
            self.send("%s NO [AUTHENTICATIONFAILED] invalid credentials\r\n" % tag)
            return "%s refused" % user
        if not self.logged_in:
            self.send("%s BAD not logged in\r\n" % tag)
            return "refused: not logged in"
        if name == "SELECT":
            self.send("* 1 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n"
                      "%s OK [READ-WRITE] SELECT completed\r\n" % tag)
            return args[0].decode() if args else ""
        if name == "FETCH":
            body = imap_test_data.message(self.server.message_size)
            self.send(b"* 1 FETCH (BODY[] {%d}\r\n" % len(body) + body + b")\r\n"
                      + b"%s OK FETCH completed\r\n" % tag.encode())
            return "%d" % len(body)
        if name == "APPEND" and args:
            data = args[-1]
            match = data == imap_test_data.message(len(data))
            self.send("%s OK APPEND completed\r\n" % tag if match else
                      "%s NO APPEND differs from the expected message\r\n" % tag)
            return "%d %s %s" % (len(data), imap_test_data.digest(data),
                                 "match" if match else "MISMATCH")
        self.send("%s BAD unknown command\r\n" % tag)
        return "unknown"


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.settimeout(IDLE_TIMEOUT)
        try:
            if self.server.tls is not None:
                sock = self.server.tls.wrap_socket(sock, server_side=True)
            Session(self.server, sock).serve()
        except (Quit, OSError, ssl.SSLError):
            pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def record(self, text):
        with self.lock:
            self.record_file.write(text + "\n")
            self.record_file.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--message-size", type=int, default=1 << 20)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    options = parser.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    server.name = options.name
    server.user = options.user.encode()
    server.password = options.password.encode()
    server.message_size = options.message_size
    server.lock = threading.Lock()
    server.record_file = open(options.record, "a")
    server.tls = None
    if options.tls_cert:
        server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.tls.load_cert_chain(options.tls_cert, options.tls_key)
    host, port = server.server_address
    print("listening on %s:%d" % (host, port), file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
