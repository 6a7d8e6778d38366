"""A bell client for tests: the `websockets` library's synchronous client on a real socket."""

from __future__ import annotations

import json
import time

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


class Bell:
    def __init__(self, port: int, token: str | None = None, *, cursor: str | None = None):
        query = []
        if token is not None:
            query.append(f"token={token}")
        if cursor:
            query.append(f"cursor={cursor}")
        url = f"ws://127.0.0.1:{port}/ws/notifications/" + (f"?{'&'.join(query)}" if query else "")
        self._connection = connect(url, open_timeout=10)
        self.ws: ClientConnection = self._connection.__enter__()
        self.frames: list[dict] = []

    def send(self, message: dict) -> None:
        self.ws.send(json.dumps(message))

    def next(self, timeout: float = 10.0) -> dict:
        frame = json.loads(self.ws.recv(timeout=timeout))
        self.frames.append(frame)
        return frame

    def next_of(self, kind: str, timeout: float = 10.0) -> dict:
        """The next frame of this type (frames of other types are kept in ``frames``)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.next(timeout=max(deadline - time.monotonic(), 0.01))
            if frame["type"] == kind:
                return frame

    def notifications(self, count: int, timeout: float = 10.0) -> list[dict]:
        return [self.next_of("notification", timeout) for _ in range(count)]

    def closed_code(self, timeout: float = 10.0) -> tuple[int, list]:
        """(close code, frames received before the close)."""
        received = []
        try:
            while True:
                received.append(self.ws.recv(timeout=timeout))
        except ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else closed.sent.code if closed.sent else 1006), received

    def close(self) -> None:
        self._connection.__exit__(None, None, None)

    def __enter__(self) -> Bell:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
