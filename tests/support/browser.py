"""Headless Chromium (Debian's `chromium`, installed by `make test`) driven over the DevTools
protocol with the `websockets` client the tests already use: navigate, evaluate, screenshot."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
from pathlib import Path

import httpx
from websockets.sync.client import connect

from tests.support.processes import ManagedProcess, free_port, wait_for


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("no Chromium: `make test` installs Debian's chromium (scripts/ensure_chromium.sh)")


class HeadlessChromium:
    def __init__(self, tmp_path: Path):
        port = free_port()
        argv = [
            chromium_path(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--window-size=1000,700", f"--remote-debugging-port={port}",
            f"--user-data-dir={tmp_path / 'chromium-profile'}", "--remote-allow-origins=*", "about:blank",
        ]  # fmt: skip
        self.process = ManagedProcess(argv, dict(os.environ), tmp_path / "chromium.log")
        self._ids = itertools.count(1)
        try:
            self.process.wait_for_log("DevTools listening on", timeout=60)
            pages = wait_for(lambda: _pages(port), timeout=20, message="Chromium's first page")
            self._connection = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
            self.ws = self._connection.__enter__()
        except BaseException:
            self.process.kill_group()
            raise

    def call(self, method: str, **params) -> dict:
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == call_id:  # events in between are not needed here
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        try:
            self._connection.__exit__(None, None, None)
        finally:
            self.process.kill_group()


def _pages(port: int) -> list[dict]:
    try:
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
    except httpx.HTTPError:
        return []
    return [t for t in targets if t.get("type") == "page"]
