"""A small asyncio HTTP/1.1 load generator (keep-alive, fixed-rate or closed-loop).

Lean on purpose: on a 2-core machine the client shares CPU with the server, so it must cost
far less per request than what it measures. Fixed-rate runs time each request from when it
was *scheduled*, not when it was sent, so a stalled server shows up in the latency instead of
silently lowering the offered load (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RunResult:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed_s: float = 0.0
    items_per_request: int = 1
    # Wall-clock time (time.time()) of the first scheduled request: fixed_rate's request i
    # was scheduled at started_wall + i / rate, comparable with timestamps other processes write.
    started_wall: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index]

    def summary(self) -> dict:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "items_ok": self.ok * self.items_per_request,
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "elapsed_s": round(self.elapsed_s, 3),
            "requests_per_s": round(self.ok / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "items_per_s": round(self.ok * self.items_per_request / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "p50_ms": round(self.percentile(50), 2),
            "p90_ms": round(self.percentile(90), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(max(self.latencies_ms), 2) if self.latencies_ms else None,
            "mean_ms": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else None,
        }


class Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length, chunked, close = None, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.lower() == "close":
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                if size == 0:
                    await self.reader.readline()
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            payload = b"".join(parts)
        else:
            payload = await self.reader.readexactly(length or 0)
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


BodyFactory = Callable[[int], bytes]


async def _one(conn: Connection, path: str, make_body: BodyFactory, i: int, headers, result: RunResult, t_ref: float):
    try:
        status, _ = await conn.post(path, make_body(i), headers)
        result.statuses[status] = result.statuses.get(status, 0) + 1
    except Exception:
        result.errors += 1
        conn.close()
    result.latencies_ms.append((time.perf_counter() - t_ref) * 1000)


async def fixed_rate(host, port, path, make_body: BodyFactory, headers, *, rate: float, duration: float, connections: int = 64) -> RunResult:
    """Offer ``rate`` requests/s for ``duration`` s; latency counts from each scheduled start."""
    result = RunResult()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        conn = Connection(host, port)
        await conn.open()
        idle.put_nowait(conn)
    total = int(rate * duration)
    start = time.perf_counter()
    result.started_wall = time.time() - (time.perf_counter() - start)
    tasks = []

    async def run(i: int, scheduled: float) -> None:
        conn = await idle.get()
        try:
            await _one(conn, path, make_body, i, headers, result, scheduled)
        finally:
            idle.put_nowait(conn)

    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(run(i, scheduled)))
    await asyncio.gather(*tasks)
    result.elapsed_s = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait().close()
    return result


async def closed_loop(host, port, path, make_body: BodyFactory, headers, *, concurrency: int, duration: float, items_per_request: int = 1) -> RunResult:
    """``concurrency`` clients each send the next request as soon as the last one answered."""
    result = RunResult(items_per_request=items_per_request)
    counter = iter(range(10**9))
    deadline = time.perf_counter() + duration

    async def client() -> None:
        conn = Connection(host, port)
        await conn.open()
        while time.perf_counter() < deadline:
            await _one(conn, path, make_body, next(counter), headers, result, time.perf_counter())
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - start
    return result
