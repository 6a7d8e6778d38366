"""bench/inapp_latency: API accept → frame on a connected bell, through the real processes.

The services profile as the Procfile runs it — the web (gunicorn), the WebSocket server
(``ws``: Daphne), the in-app, core and maintenance workers and beat — on databases
notify_ibench, notify_ibench_shard_0/1 (recreated) and Redis DB 12. ``--clients`` users
(default 1,000) each hold one authenticated WebSocket (tokens issued in bulk with
``notifications.services.user_tokens.issue``), spread over a few client processes. Then
single sends (``order_shipped``, ``channels: ["inapp"]``) go to the API open-loop at
``--rate`` per second (default 100) for ``--duration`` s (default 30), each to a random
connected user.

Latency of one notification: from the request's *scheduled* start (so a stalled API cannot
hide) to the moment its ``notification`` frame reached the client (wall clocks of one
machine). Every accepted send must arrive on its user's socket exactly once: lost and
duplicated frames are counted. Also CPU seconds per process group during the stream and a
calibration loop at start and end. Prints a table and writes bench/results/inapp_latency.json.

    python -m bench.inapp_latency [--clients 1000] [--rate 100] [--duration 30] [--client-processes 2]

Targets (issue 8, 2 cores): p50 ≤ 30 ms, p99 ≤ 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import procfile  # noqa: E402
from bench.api_accept import calibrate  # noqa: E402
from bench.cpu import GroupAccountant, group_delta  # noqa: E402
from bench.delivery_stream import (  # noqa: E402
    _DROPPED_ENV,
    free_port,
    http_get,
    procfile_env,
    sweeps_running,
    wait_for,
    web_ready,
    workers_ready,
)
from bench.loadgen import Connection  # noqa: E402
from bench.results import write_results  # noqa: E402
from bench.stream_measure import wait_drained  # noqa: E402
from bench.targets import PG, Target, _describe, prepare  # noqa: E402
from bench.ws_clients import ClientPool, raise_fd_limit  # noqa: E402

SEND = "/api/v1/notifications"
DATABASES = ("notify_ibench", "notify_ibench_shard_0", "notify_ibench_shard_1")
REDIS_DB = 12
PROCESSES = ("web", "ws", "worker-inapp", "worker-core", "worker-maintenance", "beat")
TOKEN_KEY = "bench-only-user-token-signing-key-32-bytes-or-more"  # the bench and the servers must agree on it
TARGETS = {"p50_ms": 30.0, "p99_ms": 150.0}
# The bench and its servers agree on the token key, and the channel layer gets its own prefix:
# Redis pub/sub ignores the database number, so without it frames that other deployments on
# this Redis publish for bench-user-N would reach these clients (and load this Daphne).
ISOLATED = {"USER_TOKEN_KEYS": TOKEN_KEY, "CHANNEL_LAYER_PREFIX": "bench-inapp"}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def issue_tokens(users: list[str]) -> list[tuple[str, str]]:
    from notifications.services.user_tokens import issue

    return [(user, issue(user).token) for user in users]


async def stream(port: int, key: str, users: list[str], rate: float, duration: float, run: str) -> list[dict]:
    """Open-loop single sends; per request: scheduled wall time, user, status, notification id."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(32):
        conn = Connection("127.0.0.1", port)
        await conn.open()
        idle.put_nowait(conn)
    rng = random.Random(8)
    sent: list[dict] = []

    async def one(i: int, scheduled_wall: float) -> None:
        user = rng.choice(users)
        body = json.dumps(
            {"user_id": user, "type": "order_shipped", "channels": ["inapp"],
             "data": {"name": "Ada", "order_id": f"O-{i}"}, "idempotency_key": f"{run}-{i}"}
        ).encode()  # fmt: skip
        record = {"i": i, "user": user, "scheduled": scheduled_wall, "status": 0, "id": None}
        conn = await idle.get()
        try:
            status, payload = await conn.post(SEND, body, headers)
            record["status"] = status
            if status == 202:
                record["id"] = json.loads(payload)["id"]
        except Exception as exc:
            record["error"] = type(exc).__name__
            conn.close()
        finally:
            idle.put_nowait(conn)
        record["answered"] = time.time()
        sent.append(record)

    total = int(rate * duration)
    start = time.perf_counter()
    start_wall = time.time() - (time.perf_counter() - start)
    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, start_wall + i / rate)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    return sent


def wait_for_frames(pool: ClientPool, quiet: float, limit: float = 180.0) -> float:
    """Wait until no frame has arrived for ``quiet`` seconds (or ``limit``); the seconds
    waited. Frames still queued in Daphne are late, not lost: only what never comes is lost.
    Not "until the expected count": Redis pub/sub channels ignore the database number, so on
    a shared Redis another deployment's frames for the same user ids (bench-user-N) arrive
    too and would end the wait early."""
    started = last_change = time.monotonic()
    seen = -1
    while time.monotonic() - started < limit:
        count = pool.frames_so_far()
        if count != seen:
            seen, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > quiet:
            break
        time.sleep(0.2)
    return round(time.monotonic() - started, 2)


def sent_times(target: Target) -> dict[str, float]:
    """When each in-app delivery was sent (the provider published its frame), by notification id."""
    import psycopg

    times: dict[str, float] = {}
    for name in target.shard_dbs:
        with psycopg.connect(f"{PG}/{name}") as conn:
            for nid, sent in conn.execute(
                "SELECT notification_id::text, extract(epoch from sent_at)::float8 FROM delivery_delivery "
                "WHERE channel = 'inapp' AND sent_at IS NOT NULL"
            ).fetchall():
                times[nid] = sent
    return times


def inapp_outcomes(target: Target) -> dict[str, int]:
    """In-app deliveries by status and provider message id: ``live`` was published to the
    user's group, ``inbox`` found the user offline (a frame the client will not get)."""
    import psycopg

    outcomes: dict[str, int] = {}
    for name in target.shard_dbs:
        with psycopg.connect(f"{PG}/{name}") as conn:
            for status, message_id, count in conn.execute(
                "SELECT status, provider_message_id, count(*) FROM delivery_delivery WHERE channel = 'inapp' GROUP BY 1, 2"
            ).fetchall():
                key = f"{status}:{message_id}" if message_id else status
                outcomes[key] = outcomes.get(key, 0) + count
    return dict(sorted(outcomes.items()))


def analyse(sent: list[dict], frames: list[tuple[str, str, float]], published: dict[str, float]) -> dict:
    accepted = [r for r in sent if r["id"]]
    by_id: dict[str, list[tuple[str, float]]] = {}
    for user, nid, received in frames:
        by_id.setdefault(nid, []).append((user, received))
    latencies, lost, wrong_user, duplicated = [], 0, 0, 0
    answer_to_frame, accept_to_sent, sent_to_frame = [], [], []
    accept_ms = [(r["answered"] - r["scheduled"]) * 1000 for r in accepted]
    for record in accepted:
        got = by_id.get(record["id"], [])
        mine = [t for user, t in got if user == record["user"]]
        wrong_user += len(got) - len(mine)
        if not mine:
            lost += 1
            continue
        duplicated += len(mine) - 1
        latencies.append((min(mine) - record["scheduled"]) * 1000)
        answer_to_frame.append((min(mine) - record["answered"]) * 1000)
        if record["id"] in published:
            accept_to_sent.append((published[record["id"]] - record["scheduled"]) * 1000)
            sent_to_frame.append((min(mine) - published[record["id"]]) * 1000)
    known = {r["id"] for r in accepted}
    return {
        "sent": len(sent),
        "accepted": len(accepted),
        "statuses": {str(s): sum(1 for r in sent if r["status"] == s) for s in sorted({r["status"] for r in sent})},
        "frames_received": len(frames),
        "lost_frames": lost,
        "duplicated_frames": duplicated,
        "frames_for_another_user": wrong_user,
        "frames_not_of_this_run": sum(1 for _, nid, _ in frames if nid not in known),
        "accept_p50_ms": round(percentile(accept_ms, 50), 2),
        "accept_p99_ms": round(percentile(accept_ms, 99), 2),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p90_ms": round(percentile(latencies, 90), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
        # Where the time goes: the API's answer, the worker's publish (delivery sent_at), Daphne.
        "segments_p50_p99_ms": {
            name: [round(percentile(values, 50), 2), round(percentile(values, 99), 2)]
            for name, values in (
                ("accept_to_answer", accept_ms),
                ("answer_to_frame", answer_to_frame),
                ("accept_to_published", accept_to_sent),
                ("published_to_frame", sent_to_frame),
            )
        },
    }


def table(results: dict) -> str:
    m, c = results["measure"], results["connect"]
    cpu = results["cpu_seconds"]
    seconds = results["stream_seconds"]
    lines = [
        f"\nbench/inapp_latency  commit {results['commit']}{' (dirty)' if results['commit_dirty'] else ''}  "
        f"{results['when']}  calibration {results['calibration_ms'][0]} → {results['calibration_ms'][-1]} ms",
        f"clients connected      {c['connected']:,} of {results['settings']['clients']:,} in {c['connect_seconds']} s "
        f"({c['failed']} failed, {results['closed_early']} closed early)",
        f"offered                {results['settings']['rate']:g} sends/s × {results['settings']['duration']:g} s = {m['sent']} sends, "
        f"{m['accepted']} accepted {m['statuses']}; in-app deliveries {results['inapp_deliveries']}",
        f"API answer             p50 {m['accept_p50_ms']} ms  p99 {m['accept_p99_ms']} ms",
        f"accept → frame         p50 {m['p50_ms']} ms  p90 {m['p90_ms']} ms  p99 {m['p99_ms']} ms  max {m['max_ms']} ms",
        "segments p50 / p99     " + ", ".join(f"{k.replace('_', ' ')} {v[0]:g} / {v[1]:g} ms" for k, v in m["segments_p50_p99_ms"].items()),
        f"frames                 {m['frames_received']} received, lost {m['lost_frames']}, duplicated "
        f"{m['duplicated_frames']}, to another user {m['frames_for_another_user']}, not of this run "
        f"{m['frames_not_of_this_run']} (the warm-up's; others' on a shared Redis)",
        "targets                " + ", ".join(
            f"{k} ≤ {v:g} ms: {'met' if m[k] <= v else 'NOT met'}" for k, v in TARGETS.items()
        ) + f", lost = 0: {'met' if m['lost_frames'] == 0 else 'NOT met'}",
        f"CPU during the stream ({seconds:g} s to the last answer; seconds, % of one core):",
    ]  # fmt: skip
    for name, value in sorted(cpu.items(), key=lambda kv: -kv[1]):
        if not name.startswith("machine_") and value >= 0.05:
            lines.append(f"  {name:<22} {value:7.2f}  {100 * value / seconds:5.1f} %")
    lines.append(
        f"  {'machine busy':<22} {cpu['machine_busy']:7.2f}  {100 * cpu['machine_busy'] / seconds:5.1f} % (of 200 %)"
    )
    return "\n".join(lines)


def prepare_ibench(users: int) -> tuple[Target, list[float]]:
    """The in-app benchmarks' databases and Redis DB, fresh, with ``users`` recipients; this
    process's environment pointed at them and Django set up. Returns the first calibration."""
    target = _describe(Target("ibench", ROOT, DATABASES[0], list(DATABASES[1:]), REDIS_DB))
    os.environ.update(target.env)
    os.environ.update(ISOLATED)
    for name in _DROPPED_ENV[1:]:
        os.environ.pop(name, None)
    calibration = [calibrate()]
    print(f"calibration {calibration[0]} ms; preparing databases and {users:,} recipients ({target.commit})...", flush=True)
    prepare(target, users)
    import django

    django.setup()
    return target, calibration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1_000, help="connected users (one WebSocket each)")
    parser.add_argument("--rate", type=float, default=100.0, help="offered single sends/s")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of sending")
    parser.add_argument("--client-processes", type=int, default=2, help="processes holding the WebSockets")
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds without a new frame after which the rest is lost"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="extra env for the Procfile processes"
    )
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "inapp_latency.json"))
    args = parser.parse_args()
    extra = {**ISOLATED, "LOG_LEVEL": "WARNING", **dict(item.split("=", 1) for item in args.set)}
    raise_fd_limit()  # inherited by Daphne and the client processes

    target, calibration = prepare_ibench(args.clients)
    from django.conf import settings

    users = [f"bench-user-{i}" for i in range(args.clients)]
    started = time.perf_counter()
    creds = issue_tokens(users)
    token_seconds = time.perf_counter() - started

    work_dir = Path(tempfile.mkdtemp(prefix="bench-inapp-latency-"))
    (work_dir / "var").mkdir()
    port, ws_port = free_port(), free_port()
    env = procfile_env(target, port, ws_port, work_dir / "var", extra)
    processes = [p for p in procfile.parse() if p.name in PROCESSES]
    pools = [p.name.removeprefix("worker-") for p in processes if p.name.startswith("worker-")]
    pool = ClientPool(f"ws://127.0.0.1:{ws_port}/ws/notifications/", creds, processes=args.client_processes)
    with ExitStack() as stack:
        stack.callback(procfile.stop, processes)
        stack.callback(pool.terminate)
        print(f"starting {', '.join(p.name for p in processes)} (logs in {work_dir / 'logs'})...", flush=True)
        procfile.start(processes, env, work_dir / "logs")
        wait_for("the web process to answer /readyz", lambda: web_ready(port), processes)
        wait_for("every worker pool to answer a ping", lambda: workers_ready(pools), processes, timeout=300)
        wait_for("beat and the maintenance worker to sweep every shard", lambda: sweeps_running(env["REDIS_URL"], settings.SHARD_ALIASES), processes)  # fmt: skip
        wait_for("daphne (ws) to answer /healthz", lambda: http_get(ws_port, "/healthz")[0] == 200, processes)
        print(f"connecting {args.clients:,} WebSockets from {args.client_processes} processes...", flush=True)
        pool.start()
        connect = pool.wait_connected()
        print(f"  {connect}", flush=True)
        if not connect["connected"]:
            sys.exit("no client connected")
        connected_users = users  # one socket per user; a failed one shows up as lost frames
        accountant = GroupAccountant({**{p.name: [p.pid] for p in processes}, "clients": pool.pids}, list(DATABASES))
        print("warming up (10 sends/s for 3 s)...", flush=True)
        asyncio.run(stream(port, target.key, connected_users, 10, 3, "warm"))
        time.sleep(2)  # the warm-up frames are in before the measured stream starts
        accountant.refresh()
        print(f"stream: {args.rate:g} sends/s for {args.duration:g} s to random connected users...", flush=True)
        cpu_before = accountant.snapshot()
        begun = time.time()
        sent = asyncio.run(stream(port, target.key, connected_users, args.rate, args.duration, "run"))
        cpu_after = accountant.snapshot()
        stream_seconds = time.time() - begun
        drained, _ = wait_drained([f"{PG}/{name}" for name in target.shard_dbs], timeout=300)
        frames_wait = wait_for_frames(pool, args.grace)
        frames = pool.stop()
        published = sent_times(target)
        calibration.append(calibrate())
        procfile.stop(processes)
    measure = analyse(sent, frames, published)
    results = {
        "benchmark": "inapp_latency",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": target.commit,
        "commit_dirty": target.dirty,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {**vars(args), "processes": {p.name: p.command for p in processes}, "env_overrides": extra},
        "calibration_ms": calibration,
        "token_issue_seconds": round(token_seconds, 3),
        "connect": connect,
        "closed_early": pool.closed_early,
        "measure": measure,
        "targets": TARGETS,
        "stream_seconds": round(stream_seconds, 2),
        "drained": drained,
        "waited_for_frames_seconds": frames_wait,
        "inapp_deliveries": inapp_outcomes(target),
        "cpu_seconds": group_delta(cpu_before, cpu_after),
        "logs": str(work_dir / "logs"),
    }
    output = write_results(args.output, results)
    print(table(results))
    print(f"\nwrote {output}; process logs in {work_dir / 'logs'}")
    if measure["lost_frames"] or measure["accepted"] != measure["sent"]:
        sys.exit("lost frames or refused sends: see above")


if __name__ == "__main__":
    main()
