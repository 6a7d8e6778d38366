"""HTTP over a raw socket: send exactly the bytes a test means (headers that claim a body that
never comes), then read the answer."""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

# How long a read may wait: far longer than any answer from the headers takes, and the test
# fails (instead of hanging) if the server waits for a body that never comes.
READ_TIMEOUT = 20.0


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_start: bytes  # the first bytes on the wire (shows an interim "100 Continue")
    closed_after: bool  # the server closed the connection after the answer

    def json(self):
        return json.loads(self.body)


def exchange(base: str, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> RawAnswer:
    """Send the request line, ``headers`` (as given: a Content-Length may claim more than
    ``body``) and ``body``; read one answer and whether the connection closes after it."""
    url = urlsplit(base)
    head = f"{method} {path} HTTP/1.1\r\nHost: {url.hostname}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=READ_TIMEOUT) as sock:
        sock.sendall(head.encode("latin-1") + body)
        raw_start = sock.recv(12, socket.MSG_PEEK)
        answer = http.client.HTTPResponse(sock, method=method)
        answer.begin()
        content = answer.read()
        try:
            closed_after = sock.recv(1) == b""
        except ConnectionResetError:
            closed_after = True
        except TimeoutError:
            closed_after = False
    return RawAnswer(answer.status, {k.lower(): v for k, v in answer.getheaders()}, content, raw_start, closed_after)
