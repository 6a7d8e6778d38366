"""bench/api_accept: how fast the service API accepts notifications, on this machine.

Services profile: Daphne on PostgreSQL (a global database and two shard databases) and Redis.
Measures, in one run:

* single sends at a fixed offered rate (default 200 req/s): p50 / p99 latency;
* single sends, closed loop: the maximum sustained requests/s;
* bulk sends of 1000 items, closed loop: notifications/s accepted;
* beside them, the limits of the same machine: Redis SET ops/s (redis-benchmark) and
  PostgreSQL COPY rows/s and single-row INSERT transactions/s (pgbench).

Workers are not started: this measures acceptance (validate, idempotency, render, persist,
publish). Prints a table and writes bench/results/api_accept.json.

    python -m bench.api_accept [--duration 20] [--rate 200] [--web-processes 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG = "postgres://postgres@127.0.0.1:5432"
GLOBAL_DB = "notify_bench"
SHARD_DBS = ["notify_bench_shard_0", "notify_bench_shard_1"]
REDIS_DB = 14
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
USERS = 10_000
TYPE = "order_shipped"  # email + push + inapp: 5 rows per notification

ENV = {
    "NOTIFY_PROFILE": "services",
    "DATABASE_URL": f"{PG}/{GLOBAL_DB}",
    "SHARD_DATABASE_URLS": ",".join(f"{PG}/{name}" for name in SHARD_DBS),
    "REDIS_URL": REDIS_URL,
    "SECRET_KEY": "bench-only-secret-key",
    "CONFIG_CACHE_SECONDS": "30",
    "DB_POOL_MAX": "16",
    "LOG_LEVEL": "WARNING",
    "DJANGO_SETTINGS_MODULE": "config.settings",
}
os.environ.update(ENV)
sys.path.insert(0, str(ROOT))

from bench import cpu  # noqa: E402
from bench.loadgen import closed_loop, fixed_rate  # noqa: E402


def reset_databases() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        for name in [GLOBAL_DB, *SHARD_DBS]:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')


def prepare() -> str:
    """Migrate, seed the catalog and 10,000 recipients with a device; return an API key."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from config.bulk import Rows, insert_rows
    from config.redis import get_redis
    from config.sharding import new_id_for_user, shard_for_user
    from delivery.models import Device
    from notifications.models import Recipient
    from notifications.services.api_keys import create_api_client
    from notifications.services.demo import seed_catalog

    call_command("migrate", verbosity=0, interactive=False)
    seed_catalog()
    get_redis().flushdb()
    now = timezone.now()
    by_shard: dict[str, list] = {}
    devices: dict[str, list] = {}
    for i in range(USERS):
        user = f"bench-user-{i}"
        alias = shard_for_user(user)
        by_shard.setdefault(alias, []).append((user, f"{user}@example.com", True, False, "+14155550100", True, "en", "UTC", now, now))
        devices.setdefault(alias, []).append((new_id_for_user(user), user, "android", f"tok-{user}", True, "", now, now, now))
    columns = ("user_id", "email", "email_verified", "email_bounced", "phone", "phone_verified", "locale", "timezone", "created_at", "updated_at")
    device_columns = ("id", "user_id", "platform", "token", "active", "deactivated_reason", "created_at", "updated_at", "last_seen_at")
    for alias, rows in by_shard.items():
        insert_rows(alias, [Rows(Recipient, columns, rows), Rows(Device, device_columns, devices[alias])])
    return create_api_client(f"bench-{uuid.uuid4().hex[:6]}", allowed_types=["*"], may_send_critical=True).key


# --- limits of this machine ---------------------------------------------------------------


def redis_limits() -> dict:
    def run(pipeline: int) -> float:
        out = subprocess.run(
            ["redis-benchmark", "-h", "127.0.0.1", "-p", "6379", "--dbnum", str(REDIS_DB), "-t", "set", "-n", "200000",
             "-c", "50", "-P", str(pipeline), "-q", "--csv"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        row = [line for line in out.splitlines() if line.startswith('"SET"')][0]
        return float(row.split(",")[1].strip('"'))

    return {"set_ops_per_s": run(1), "set_ops_per_s_pipelined_16": run(16)}


def postgres_limits(seconds: int) -> dict:
    from django.db import connections, transaction
    from django.utils import timezone

    from config.bulk import Rows, insert_rows
    from config.sharding import new_id
    from delivery.models import Delivery
    from delivery.services.records import _COLUMNS

    alias = "shard_0"
    now = timezone.now()
    rows = [
        (new_id(1), new_id(1), "u", "email", "normal", "queued", "", "a@example.com", {"subject": "s", "text": "t"},
         0, None, now, now, "", "", "", now, now)
        for _ in range(100_000)
    ]  # fmt: skip
    started = time.perf_counter()
    with transaction.atomic(using=alias):
        insert_rows(alias, [Rows(Delivery, _COLUMNS, rows)])
    copy_rows_per_s = len(rows) / (time.perf_counter() - started)
    with connections[alias].cursor() as cursor:
        cursor.execute("TRUNCATE delivery_delivery")
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_scratch (id uuid PRIMARY KEY, payload jsonb, created_at timestamptz)")
    script = Path(tempfile.mkdtemp()) / "insert.sql"
    script.write_text("""INSERT INTO bench_scratch VALUES (gen_random_uuid(), '{"a": 1}', now());\n""")
    out = subprocess.run(
        ["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-n", "-c", "16", "-j", "2", "-T", str(seconds), "-f", str(script), SHARD_DBS[0]],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    tps = float([line for line in out.splitlines() if line.startswith("tps")][0].split("=")[1].split()[0])
    with connections[alias].cursor() as cursor:
        cursor.execute("DROP TABLE bench_scratch")
    return {"copy_rows_per_s": round(copy_rows_per_s), "insert_txn_per_s_16_clients": round(tps)}


# --- the API under load -------------------------------------------------------------------


def start_web(processes: int, server: str = "gunicorn", threads: int = 1, worker_class: str = "sync") -> tuple[list[subprocess.Popen], int]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    os.set_inheritable(sock.fileno(), True)
    port = sock.getsockname()[1]
    fd = sock.fileno()
    if server == "daphne":
        argvs = [[sys.executable, "-m", "daphne", "-v", "0", "--fd", str(fd), "config.asgi:application"]] * processes
    else:
        argvs = [[sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn", "--bind", f"fd://{fd}",
                  "--workers", str(processes), "--worker-class", worker_class, "--threads", str(threads),
                  "config.wsgi:application"]]  # fmt: skip
    procs = [subprocess.Popen(argv, cwd=ROOT, env=dict(os.environ), pass_fds=(fd,)) for argv in argvs]
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    return procs, port


def single_body(run_id: str):
    def make(i: int) -> bytes:
        return json.dumps(
            {
                "user_id": f"bench-user-{i % USERS}",
                "type": TYPE,
                "data": {"name": "Ada", "order_id": f"O-{i}"},
                "idempotency_key": f"{run_id}-{i}",
            }
        ).encode()

    return make


def bulk_body(run_id: str, size: int):
    def make(i: int) -> bytes:
        base = i * size
        items = [
            {
                "user_id": f"bench-user-{(base + j) % USERS}",
                "type": TYPE,
                "data": {"name": "Ada", "order_id": f"O-{base + j}"},
                "idempotency_key": f"{run_id}-{base + j}",
            }
            for j in range(size)
        ]
        return json.dumps({"items": items}).encode()

    return make


PHASES = ("single_at_rate", "single_max", "bulk")


def measure_api(port: int, key: str, args, web_pids: list[int]) -> dict:
    """Each phase runs ``args.rounds`` times, interleaved, so a slow spell of this (shared,
    noisy) machine hits every phase alike; figures are the medians over the rounds."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    send, bulk = "/api/v1/notifications", "/api/v1/notifications/bulk"

    async def with_cpu(coroutine):
        before = cpu.snapshot(web_pids)
        result = await coroutine
        summary = result.summary()
        used = cpu.delta(before, cpu.snapshot(web_pids))
        summary["cpu_seconds"] = used
        if summary["items_ok"]:
            summary["cpu_us_per_item"] = {k: round(v / summary["items_ok"] * 1e6, 1) for k, v in used.items()}
        return summary

    def phase(name: str, round_no: int):
        tag = f"{name}{round_no}"
        if name == "single_at_rate":
            return fixed_rate("127.0.0.1", port, send, single_body(tag), headers, rate=args.rate, duration=args.duration)
        if name == "single_max":
            return closed_loop("127.0.0.1", port, send, single_body(tag), headers, concurrency=args.concurrency, duration=args.duration)
        return closed_loop(
            "127.0.0.1", port, bulk, bulk_body(tag, 1000), headers, concurrency=args.bulk_concurrency,
            duration=args.duration, items_per_request=1000,
        )  # fmt: skip

    async def run() -> dict:
        warm = await closed_loop("127.0.0.1", port, send, single_body("warm"), headers, concurrency=4, duration=3)
        warm_bulk = await closed_loop(
            "127.0.0.1", port, bulk, bulk_body("warmbulk", 1000), headers, concurrency=1, duration=3, items_per_request=1000
        )
        phases = [name for name in PHASES if name in args.phases]
        rounds: dict[str, list[dict]] = {name: [] for name in phases}
        for round_no in range(args.rounds):
            for name in phases:
                rounds[name].append(await with_cpu(phase(name, round_no)))
        return {"warmup_single": warm.summary(), "warmup_bulk": warm_bulk.summary(), "rounds": rounds}

    return asyncio.run(run())


def median_of(rounds: list[dict], *path: str) -> float:
    values = []
    for summary in rounds:
        value = summary
        for key in path:
            value = value.get(key, {}) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            values.append(value)
    return statistics.median(values) if values else float("nan")


def spread(rounds: list[dict], *path: str) -> str:
    values = [median_of([summary], *path) for summary in rounds]
    return f"{min(values):g}–{max(values):g}"


def calibrate() -> float:
    """ms for a fixed pure-Python loop: how fast this machine's CPU was at that moment."""
    started = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i * i
    return round((time.perf_counter() - started) * 1000, 1)


def stored_notifications() -> int:
    from django.conf import settings

    from notifications.models import Notification

    return sum(Notification.objects.using(alias).count() for alias in settings.SHARD_ALIASES)


def table(results: dict, args) -> str:
    rounds = results["api"]["rounds"]
    empty = [{"p50_ms": float("nan"), "p99_ms": float("nan"), "requests_per_s": 0, "items_per_s": 0}]
    rate, sat, bulk = (rounds.get(name, empty) for name in PHASES)
    redis, pg = results["limits"]["redis"], results["limits"]["postgres"]
    m = median_of

    def cpu_line(phase):
        return " / ".join(f"{m(phase, 'cpu_us_per_item', k):.0f}" for k in ("web", "postgres", "redis"))

    failed = sum(r["requests"] - r["ok"] + r["errors"] for phase in rounds.values() for r in phase if "requests" in r)
    rows = [
        (f"Single send at {args.rate:g} req/s offered: p50", f"{m(rate, 'p50_ms'):.1f} ms ({spread(rate, 'p50_ms')})", "≤ 10 ms"),
        (f"Single send at {args.rate:g} req/s offered: p99", f"{m(rate, 'p99_ms'):.1f} ms ({spread(rate, 'p99_ms')})", "≤ 50 ms"),
        (f"Single send, max sustained ({args.concurrency} conns)", f"{m(sat, 'requests_per_s'):.0f} req/s ({spread(sat, 'requests_per_s')})", ""),
        (f"Bulk of 1000, {args.bulk_concurrency} concurrent", f"{m(bulk, 'items_per_s'):.0f} notifications/s ({spread(bulk, 'items_per_s')})", "≥ 10,000/s"),
        ("  CPU µs per notification: web / PostgreSQL / Redis", cpu_line(bulk), ""),
        ("  CPU µs per single send:  web / PostgreSQL / Redis", cpu_line(sat), ""),
        ("Redis SET ops/s: 50 clients / pipelined ×16", f"{redis['set_ops_per_s']:.0f} / {redis['set_ops_per_s_pipelined_16']:.0f}", "limit"),
        ("PostgreSQL COPY, delivery rows/s", f"{pg['copy_rows_per_s']}", "limit"),
        ("PostgreSQL 1-row INSERT txn/s (pgbench, 16 clients)", f"{pg['insert_txn_per_s_16_clients']}", "limit"),
        ("CPU calibration loop, ms (start / end)", f"{results['calibration_ms'][0]} / {results['calibration_ms'][1]}", "lower = faster"),
        ("Requests failed; notifications stored / accepted", f"{failed}; {results['stored_notifications']} / {results['accepted']}", "0; equal"),
    ]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    lines = [f"{'measure'.ljust(width)} | {'median of rounds (min–max)'.ljust(value_width)} | target"]
    lines.append("-" * (width + value_width + 16))
    lines += [f"{name.ljust(width)} | {value.ljust(value_width)} | {target}" for name, value, target in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per phase per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every phase (medians reported)")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--rate", type=float, default=200.0, help="offered single-send rate")
    parser.add_argument("--concurrency", type=int, default=32, help="connections for the max-throughput phase")
    parser.add_argument("--bulk-concurrency", type=int, default=5, help="concurrent bulk requests (one per web worker)")
    parser.add_argument("--server", choices=["gunicorn", "daphne"], default="gunicorn")
    parser.add_argument("--web-processes", type=int, default=5, help="web server processes sharing one socket")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (sync: one request per connection)")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "api_accept.json"))
    args = parser.parse_args()
    args.phases = [name.strip() for name in args.phases.split(",")]

    print("preparing databases and 10,000 recipients...", flush=True)
    reset_databases()
    key = prepare()
    calibration = [calibrate()]
    limits = {"redis": redis_limits(), "postgres": postgres_limits(seconds=10)}
    procs, port = start_web(args.web_processes, args.server, args.threads, args.worker_class)
    try:
        print(
            f"measuring the API ({args.server} {args.worker_class}, {args.web_processes} process(es) x {args.threads} thread(s); "
            f"{args.rounds} rounds of {args.duration:g} s per phase)...",
            flush=True,
        )
        api = measure_api(port, key, args, [proc.pid for proc in procs])
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    calibration.append(calibrate())
    accepted = api["warmup_single"]["items_ok"] + api["warmup_bulk"]["items_ok"]
    accepted += sum(r["items_ok"] for phase in api["rounds"].values() for r in phase)
    results = {
        "benchmark": "api_accept",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": vars(args),
        "api": api,
        "limits": limits,
        "calibration_ms": calibration,
        "accepted": accepted,
        "stored_notifications": stored_notifications(),
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print(table(results, args))
    print(f"\nwrote {output}")


if __name__ == "__main__":
    main()
