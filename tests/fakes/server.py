"""A local HTTP server that stands in for the providers' APIs (SendGrid, Twilio, Google's
OAuth and FCM), for the real SDK clients to talk to.

Each provider module registers its routes (method + path pattern -> handler). A test scripts
what the next requests get (``server.script(route, ...)``: a status, a body, headers such as
``Retry-After``, or a hang), and reads what the SDKs sent (``server.requests``). It runs in
the test process on a free port, so worker processes started by the test reach it too.

An SDK whose endpoint is a fixed ``https://`` URL (firebase-admin's FCM) reaches it as an
HTTPS proxy (``HTTPS_PROXY``): the server answers ``CONNECT`` for the hosts it was given,
ends TLS with a certificate from a throwaway CA (``ca_bundle``, for ``REQUESTS_CA_BUNDLE``)
and serves the same routes inside the tunnel.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    route: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes/str as they are
    headers: dict[str, str] = field(default_factory=dict)
    hang_seconds: float = 0.0  # sleep before answering (a slow or hung provider)


Handler = Callable[[Recorded], Reply]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A client that gave up (a timeout test) closes mid-answer; that is not an error here.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FakeProviders:
    def __init__(self, tls_hosts: list[str] | None = None, *, record: bool = True, port: int = 0) -> None:
        from tests.fakes.tls import make_tls

        self.tls_hosts = list(tls_hosts or [])
        self._tls, self.ca_bundle = make_tls(self.tls_hosts) if self.tls_hosts else (None, None)
        self._routes: list[tuple[str, str, re.Pattern, Handler]] = []
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.record = record  # False: count requests per route only (a benchmark's millions)
        self.counts: dict[str, int] = defaultdict(int)
        self._outages: dict[str, Reply] = {}
        self._server = _QuietServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeProviders:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def route(self, name: str, method: str, pattern: str, handler: Handler) -> None:
        """``pattern`` is a regular expression matched against the whole path."""
        self._routes.append((name, method.upper(), re.compile(pattern), handler))

    def script(self, route: str, *replies: Reply) -> None:
        """The next requests to ``route`` get these replies, in order, before its handler's."""
        with self._lock:
            self._scripts[route].extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.requests.clear()
            self.counts.clear()
            self._outages.clear()

    def outage(self, route: str, reply: Reply | None) -> None:
        """Every request to ``route`` gets ``reply`` until called again with None (an outage
        of unknown length, where ``script`` needs the number of requests in advance)."""
        with self._lock:
            if reply is None:
                self._outages.pop(route, None)
            else:
                self._outages[route] = reply

    def calls(self, route: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.route == route]

    def _dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        for name, route_method, pattern, handler in self._routes:
            if route_method == method and pattern.fullmatch(parts.path):
                recorded = Recorded(name, method, parts.path, parse_qs(parts.query), headers, body)
                with self._lock:
                    self.counts[name] += 1
                    if self.record:
                        self.requests.append(recorded)
                    scripted = self._scripts[name].popleft() if self._scripts[name] else None
                    scripted = scripted or self._outages.get(name)
                return scripted if scripted is not None else handler(recorded)
        return Reply(404, {"error": f"no fake route for {method} {parts.path}"})

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = fake._dispatch(self.command, self.path, headers, body)
                if reply.hang_seconds:
                    time.sleep(reply.hang_seconds)
                payload = reply.body
                content_type = "application/json"
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                elif isinstance(payload, str):
                    payload, content_type = payload.encode(), "text/plain"
                elif payload is None:
                    payload = b""
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.headers.get("Content-Type", content_type))
                for name, value in reply.headers.items():
                    if name.lower() != "content-type":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def do_CONNECT(self) -> None:
                host = self.path.rsplit(":", 1)[0]
                if fake._tls is None or host not in fake.tls_hosts:
                    self.send_error(403, "not a host this fake stands in for")
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                # The rest of this connection is TLS: read the tunnelled requests from it.
                self.connection = fake._tls.wrap_socket(self.connection, server_side=True)
                self.rfile = self.connection.makefile("rb")
                self.wfile = self.connection.makefile("wb", buffering=0)
                self.close_connection = False

        return Handler
