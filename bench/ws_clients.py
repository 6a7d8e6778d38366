"""Many authenticated WebSocket clients of ``/ws/notifications/``, spread over a few processes.

One asyncio process holds thousands of sockets (``websockets``, no compression, no client
pings: an idle bell costs the server what a browser's would, minus the proxies' pings), but
it shares the machine's 2 cores with the server it measures, so the benchmarks split their
users over several client processes. Each process connects its users (a bounded number of
handshakes in flight), counts a connection as ready once the server has sent ``hello`` and
the first ``unread_count`` (presence is registered by then), and records every
``notification`` frame it receives with the wall-clock time it arrived (``time.time()``:
comparable with timestamps taken in other processes of this machine).

    pool = ClientPool(url, [(user_id, token), ...], processes=2)
    pool.start(); pool.wait_connected()      # -> per-process connect figures
    ...                                       # send, broadcast, measure
    pool.frames_so_far()                      # -> notification frames received so far
    frames = pool.stop()                      # -> [(user_id, notification_id, received_wall)]
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import resource
import time
from dataclasses import dataclass, field


def raise_fd_limit() -> int:
    """Soft limit of open files up to the hard one (each socket is a file); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def _hold(url: str, user: str, token: str, gate: asyncio.Semaphore, ready: list, frames: list, failures: list):
    from websockets.asyncio.client import connect

    try:
        async with gate:
            ws = await connect(
                f"{url}?token={token}", compression=None, ping_interval=None, open_timeout=120, max_queue=None
            )
            # hello, then unread_count: authenticated, in the groups, present.
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout=120))
                if message.get("type") == "unread_count":
                    break
        ready.append(time.time())
    except Exception as exc:
        failures.append(f"{type(exc).__name__}: {exc}"[:200])
        return None
    try:
        async for raw in ws:
            received = time.time()
            if '"notification"' in raw:  # cheap filter before parsing: most frames are counts
                message = json.loads(raw)
                if message.get("type") == "notification":
                    frames.append((user, message["id"], received))
    except Exception as exc:  # the server closed it: counted, the run reports it
        failures.append(f"closed: {type(exc).__name__}: {exc}"[:200])
    return ws


async def _client(url: str, creds: list[tuple[str, str]], conn, in_flight: int) -> None:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(in_flight)
    ready: list[float] = []
    frames: list[tuple[str, str, float]] = []
    failures: list[str] = []
    started = time.time()
    tasks = [asyncio.create_task(_hold(url, user, token, gate, ready, frames, failures)) for user, token in creds]
    while len(ready) + len([f for f in failures if not f.startswith("closed")]) < len(creds):
        await asyncio.sleep(0.1)
    conn.send(
        {"connected": len(ready), "failed": len(failures), "failures": failures[:5], "started": started,
         "last_ready": max(ready) if ready else started}
    )  # fmt: skip
    # Answer the parent's "count" (frames so far) until its "stop", without blocking the
    # loop that receives the frames.
    stopped = asyncio.Event()

    def command() -> None:
        message = conn.recv()
        if message == "stop":
            stopped.set()
        else:  # ("count", notification id or None for all)
            wanted = message[1]
            conn.send(len(frames) if wanted is None else sum(1 for frame in frames if frame[1] == wanted))

    loop.add_reader(conn.fileno(), command)
    await stopped.wait()
    loop.remove_reader(conn.fileno())
    closed_early = [f for f in failures if f.startswith("closed")]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    conn.send({"frames": frames, "closed_early": len(closed_early), "closed_reasons": closed_early[:5]})


def _client_main(url: str, creds: list[tuple[str, str]], conn, in_flight: int) -> None:
    raise_fd_limit()
    asyncio.run(_client(url, creds, conn, in_flight))


@dataclass
class ClientPool:
    url: str
    creds: list[tuple[str, str]]
    processes: int = 1
    in_flight: int = 100  # handshakes in flight per client process
    procs: list = field(default_factory=list)
    pipes: list = field(default_factory=list)
    connect_reports: list[dict] = field(default_factory=list)
    end_reports: list[dict] = field(default_factory=list)

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no Django state or sockets inherited
        for number in range(self.processes):
            parent, child = ctx.Pipe()
            share = self.creds[number :: self.processes]
            proc = ctx.Process(target=_client_main, args=(self.url, share, child, self.in_flight), daemon=True)
            proc.start()
            self.procs.append(proc)
            self.pipes.append(parent)

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def wait_connected(self, timeout: float = 600.0) -> dict:
        """Every process has connected (or failed) all its users; totals and the connect time."""
        deadline = time.monotonic() + timeout
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            while not pipe.poll(1.0):
                if not proc.is_alive():
                    raise RuntimeError(f"client process {proc.pid} exited ({proc.exitcode})")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"clients not connected within {timeout:g} s")
            self.connect_reports.append(pipe.recv())
        reports = self.connect_reports
        return {
            "connected": sum(r["connected"] for r in reports),
            "failed": sum(r["failed"] for r in reports),
            "failures": [f for r in reports for f in r["failures"]][:5],
            "connect_seconds": round(max(r["last_ready"] for r in reports) - min(r["started"] for r in reports), 2),
        }

    def frames_so_far(self, notification_id: str | None = None) -> int:
        """Notification frames received so far (of that notification only, if given)."""
        total = 0
        for pipe in self.pipes:
            pipe.send(("count", notification_id))
            total += pipe.recv()
        return total

    def stop(self) -> list[tuple[str, str, float]]:
        for pipe in self.pipes:
            pipe.send("stop")
        frames: list[tuple[str, str, float]] = []
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            report = pipe.recv()
            self.end_reports.append(report)
            frames.extend(report["frames"])
            proc.join(timeout=30)
        return frames

    @property
    def closed_early(self) -> int:
        return sum(r["closed_early"] for r in self.end_reports)

    def terminate(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
