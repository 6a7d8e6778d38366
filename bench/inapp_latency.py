"""bench/inapp_latency: API accept -> bell frame received, through real processes.

Services profile on this machine: gunicorn (the API), one Daphne process (the `ws` process:
WebSockets), inapp Celery workers, PostgreSQL (a global and two shard databases) and Redis.
``--clients`` WebSocket clients connect as distinct users; single sends (`channels:
["inapp"]`) go to random ones at ``--rate`` per second for ``--duration`` seconds. For each
notification it records when the API answered 202 and when its frame reached the client:
p50 / p99 of that difference (and of request start -> frame). Writes
bench/results/inapp_latency.json.

    python -m bench.inapp_latency [--clients 1000] [--rate 100] [--duration 20] [--workers 2]

Its own databases (notify_bench_inapp*) and Redis DB (``--redis-db``, 12) so it can run
beside the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from bench.targets import Target, _describe, prepare, start_web, stop_web  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "inapp_latency.json"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_ws_and_workers(target: Target, workers: int, log_dir: Path) -> tuple[list[subprocess.Popen], int]:
    port = free_port()
    env = {**target.process_env(), "DB_POOL": "1"}
    log_dir.mkdir(parents=True, exist_ok=True)
    argvs = [
        ("ws", [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]),
        ("worker", [sys.executable, "manage.py", "worker", "inapp", "--", "--concurrency", str(workers)]),
    ]
    procs = []
    for name, argv in argvs:
        with (log_dir / f"{name}.log").open("wb") as log:
            procs.append(subprocess.Popen(argv, cwd=target.root, env=env, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 90
    while "is running on" not in (log_dir / "ws.log").read_text(errors="replace"):
        if time.monotonic() > deadline or procs[0].poll() is not None:
            raise RuntimeError(f"Daphne did not start; see {log_dir / 'ws.log'}")
        time.sleep(0.2)
    while " ready." not in (log_dir / "worker.log").read_text(errors="replace"):
        if time.monotonic() > deadline or procs[1].poll() is not None:
            raise RuntimeError(f"the inapp worker did not start; see {log_dir / 'worker.log'}")
        time.sleep(0.2)
    return procs, port


async def run(args, api_port: int, ws_port: int, key: str) -> dict:
    users = [f"bench-user-{i}" for i in range(args.clients)]
    headers = {"Authorization": f"Bearer {key}"}
    received: dict[str, float] = {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{api_port}", headers=headers, limits=limits, timeout=30
    ) as api:
        semaphore = asyncio.Semaphore(32)

        async def token(user: str) -> str:
            async with semaphore:
                response = await api.post(f"/api/v1/recipients/{user}/token")
                return response.json()["token"]

        tokens = await asyncio.gather(*(token(u) for u in users))
        sockets = []
        for start in range(0, len(users), 100):  # connect in waves: Daphne accepts ~hundreds/s here
            sockets += await asyncio.gather(
                *(
                    connect(f"ws://127.0.0.1:{ws_port}/ws/notifications/?token={t}", open_timeout=60)
                    for t in tokens[start : start + 100]
                )
            )

        async def listen(ws) -> None:
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "notification":
                    received[frame["id"]] = time.perf_counter()

        for ws in sockets:  # every socket has its hello and unread_count before sends begin
            for _ in range(2):
                await ws.recv()
        listeners = [asyncio.create_task(listen(ws)) for ws in sockets]

        accepted: dict[str, tuple[float, float]] = {}
        errors = 0

        async def send_one(scheduled: float) -> None:
            nonlocal errors
            body = {"user_id": random.choice(users), "type": "order_shipped", "channels": ["inapp"],
                    "data": {"name": "Bench", "order_id": "B-1"}, "idempotency_key": uuid.uuid4().hex}  # fmt: skip
            try:
                response = await api.post("/api/v1/notifications", json=body)
            except httpx.HTTPError:
                errors += 1
                return
            if response.status_code != 202:
                errors += 1
                return
            accepted[response.json()["id"]] = (scheduled, time.perf_counter())

        total = int(args.rate * args.duration)
        start = time.perf_counter()
        tasks = []
        for i in range(total):
            at = start + i / args.rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send_one(at)))
        await asyncio.gather(*tasks)
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and not all(i in received for i in accepted):
            await asyncio.sleep(0.05)
        for task in listeners:
            task.cancel()
        for ws in sockets:
            await ws.close()

    after_accept = [(received[i] - a) * 1000 for i, (_, a) in accepted.items() if i in received]
    after_schedule = [(received[i] - s) * 1000 for i, (s, _) in accepted.items() if i in received]
    return {
        "clients": args.clients,
        "rate_per_s": args.rate,
        "duration_s": args.duration,
        "workers": args.workers,
        "sent": total,
        "accepted": len(accepted),
        "api_errors": errors,
        "frames_received": len(after_accept),
        "missing_frames": len(accepted) - len(after_accept),
        "accept_to_frame_ms": {
            "p50": percentile(after_accept, 50),
            "p99": percentile(after_accept, 99),
            "mean": statistics.fmean(after_accept) if after_accept else None,
        },  # fmt: skip
        "request_to_frame_ms": {"p50": percentile(after_schedule, 50), "p99": percentile(after_schedule, 99)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2, help="inapp worker concurrency")
    parser.add_argument("--web-processes", type=int, default=3)
    parser.add_argument("--redis-db", type=int, default=12)
    args = parser.parse_args()

    target = _describe(
        Target(
            "current",
            ROOT,
            "notify_bench_inapp",
            ["notify_bench_inapp_shard_0", "notify_bench_inapp_shard_1"],
            args.redis_db,
        )
    )
    print(f"preparing databases and {args.clients} recipients...", flush=True)
    prepare(target, args.clients)
    start_web(target, args.web_processes)
    procs, ws_port = start_ws_and_workers(target, args.workers, Path("/tmp") / f"bench-inapp-{target.port}")
    try:
        print(f"{args.clients} clients, {args.rate:g} sends/s for {args.duration:g} s...", flush=True)
        result = asyncio.run(run(args, target.port, ws_port, target.key))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        stop_web(target)
    result["commit"] = target.commit + ("+dirty" if target.dirty else "")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    a, r = result["accept_to_frame_ms"], result["request_to_frame_ms"]
    print(f"accept -> frame: p50 {a['p50']:.1f} ms, p99 {a['p99']:.1f} ms; request -> frame: p50 {r['p50']:.1f} ms, "
          f"p99 {r['p99']:.1f} ms; {result['frames_received']}/{result['accepted']} frames, {result['api_errors']} API errors")  # fmt: skip
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
