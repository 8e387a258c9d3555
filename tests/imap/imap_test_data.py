"""What the IMAP tests move: deterministic messages both ends can rebuild.

message(n) is the first n bytes of lines of 78 printable characters and
CRLF, so imaplib's APPEND (which rewrites bare CR and LF) sends it as is
when n is a multiple of 80.
"""
import hashlib


def message(size):
    lines = []
    total = 0
    k = 0
    while total < size:
        text = hashlib.sha256(b"zrelay-imap %d" % k).hexdigest() + "%014d" % k
        lines.append(text.encode() + b"\r\n")
        total += 80
        k += 1
    return b"".join(lines)[:size]


def digest(data):
    return hashlib.sha256(data).hexdigest()
