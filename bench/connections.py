"""bench/connections: idle bell WebSockets held by one Daphne process, and one broadcast to all.

Starts one Daphne process (the `ws` process) of the services profile, opens ``--connections``
authenticated WebSockets (distinct users) in waves, and reports the process's resident memory
per connection; then publishes one broadcast frame to the channel layer's `broadcast` group
(as ``notifications.services.broadcasts.create`` does) and times until every connection has
it. Writes bench/results/connections.json.

    python -m bench.connections [--connections 10000] [--redis-db 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jwt  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from bench.inapp_latency import free_port  # noqa: E402
from bench.targets import Target, _describe, prepare  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "connections.json"
TOKEN_KEY = "bench-connections-user-token-key-0123456789abcdef"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def token(user: str) -> str:
    claims = {"sub": user, "aud": "notify:user", "exp": int(time.time()) + 3600}
    return jwt.encode(claims, TOKEN_KEY, algorithm="HS256")


async def measure(port: int, pid: int, count: int, redis_url: str) -> dict:
    from channels_redis.pubsub import RedisPubSubChannelLayer

    before = rss_kb(pid)
    sockets = []
    started = time.perf_counter()
    for start in range(0, count, 250):
        wave = await asyncio.gather(
            *(
                connect(f"ws://127.0.0.1:{port}/ws/notifications/?token={token(f'conn-{i}')}", open_timeout=120)
                for i in range(start, min(start + 250, count))
            )
        )
        for ws in wave:  # authenticated: hello and unread_count received
            await ws.recv()
            await ws.recv()
        sockets += wave
    connect_s = time.perf_counter() - started
    await asyncio.sleep(2)  # let the server settle (buffers, GC) before reading its memory
    after = rss_kb(pid)

    frame_id = str(uuid.uuid4())
    got = 0
    done = asyncio.Event()

    async def wait_frame(ws) -> None:
        nonlocal got
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("id") == frame_id:
                got += 1
                if got == len(sockets):
                    done.set()
                return

    waiters = [asyncio.create_task(wait_frame(ws)) for ws in sockets]
    layer = RedisPubSubChannelLayer(hosts=[redis_url])
    frame = {"type": "notification", "id": frame_id, "title": "Broadcast", "body": "", "action_url": "",
             "category": "system", "created_at": "", "cursor": frame_id}  # fmt: skip
    sent = time.perf_counter()
    await layer.group_send("broadcast", {"type": "inbox.notification", "frame": frame, "broadcast": True})
    try:
        await asyncio.wait_for(done.wait(), timeout=120)
    except TimeoutError:
        pass
    fanout_s = time.perf_counter() - sent
    for task in waiters:
        task.cancel()
    await layer.flush()
    for ws in sockets:
        await ws.close()
    return {
        "connections": len(sockets),
        "connect_seconds": round(connect_s, 2),
        "rss_before_kb": before,
        "rss_after_kb": after,
        "kb_per_connection": round((after - before) / max(len(sockets), 1), 1),
        "broadcast_received": got,
        "broadcast_to_all_seconds": round(fanout_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--redis-db", type=int, default=12)
    args = parser.parse_args()
    target = _describe(
        Target(
            "current", ROOT, "notify_bench_inapp", ["notify_bench_inapp_shard_0", "notify_bench_inapp_shard_1"],
            args.redis_db,
        )
    )  # fmt: skip
    print("preparing databases...", flush=True)
    prepare(target, 1)
    port = free_port()
    log = Path(f"/tmp/bench-connections-{port}.log")
    env = {**target.process_env(), "DB_POOL": "1", "USER_TOKEN_KEYS": TOKEN_KEY, "PRESENCE_HEARTBEAT_SECONDS": "300"}
    with log.open("wb") as out:
        daphne = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "is running on" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline or daphne.poll() is not None:
                raise RuntimeError(f"Daphne did not start; see {log}")
            time.sleep(0.2)
        print(f"opening {args.connections} connections...", flush=True)
        result = asyncio.run(measure(port, daphne.pid, args.connections, target.env["REDIS_URL"]))
    finally:
        daphne.terminate()
        try:
            daphne.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daphne.kill()
    result["commit"] = target.commit + ("+dirty" if target.dirty else "")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
