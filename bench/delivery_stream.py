"""bench/delivery_stream: single sends at fixed rates through every process of the Procfile.

Measures, on this machine, what happens to single sends once accepted: how long until each
delivery is sent (accept → sent), whether the workers keep up (the backlog of queued and
sending deliveries over time, its slope, the drain time after the stream stops), and what it
costs (CPU seconds per process type, per delivery). Steps offer ``order_shipped`` (email +
push + in-app: 3 deliveries each) open-loop at fixed rates, one step after another, each
drained before the next. Beside the figures: the single-send max of the web process alone,
the machine's Redis and PostgreSQL limits (as bench/api_accept measures them) and a
calibration loop. Prints a table and writes bench/results/delivery_stream.json.

    python -m bench.delivery_stream [--rates 50,100,200] [--duration 30] [--set EMAIL_CONCURRENCY=2 ...]

Databases notify_stream, notify_stream_shard_0/1 (recreated) and Redis DB 8. Console providers.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import socket
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import procfile, profiling, stream_report  # noqa: E402
from bench.api_accept import calibrate, redis_limits, single_body  # noqa: E402
from bench.cpu import GroupAccountant, group_delta  # noqa: E402
from bench.limits import postgres_limits  # noqa: E402
from bench.loadgen import closed_loop, fixed_rate  # noqa: E402
from bench.results import write_results  # noqa: E402
from bench.stream_measure import Sampler, analyse_step, log_batches, step_rows, wait_drained  # noqa: E402
from bench.targets import PG, Target, _describe, prepare  # noqa: E402

SEND = "/api/v1/notifications"
DATABASES = ("notify_stream", "notify_stream_shard_0", "notify_stream_shard_1")
REDIS_DB = 8
PROFILED = ("web", "worker-email", "worker-push", "worker-inapp", "worker-maintenance")
# Settings a caller's shell may carry that would change what is measured.
_DROPPED_ENV = ("PYTHONPATH", "QUEUE_PREFIX", "CONSOLE_PROVIDER_DELAY_SECONDS", "CELERY_BROKER_URL", "LOG_LEVEL",
                "EMAIL_PROVIDER", "SMS_PROVIDER", "PUSH_PROVIDER", "INAPP_PROVIDER", "DB_POOL")  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def procfile_env(target: Target, port: int, ws_port: int, var_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    """The services profile as a deployment would set it: databases, Redis, a secret key."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(
        NOTIFY_PROFILE="services",
        SECRET_KEY="bench-only-secret-key-delivery-stream",
        DATABASE_URL=f"{PG}/{target.global_db}",
        SHARD_DATABASE_URLS=",".join(f"{PG}/{name}" for name in target.shard_dbs),
        REDIS_URL=f"redis://127.0.0.1:6379/{target.redis_db}",
        DJANGO_SETTINGS_MODULE="config.settings",
        VAR_DIR=str(var_dir),  # beat's schedule file
        PORT=str(port),
        WS_PORT=str(ws_port),
    )
    return env | extra


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_for(what: str, ready, processes: list[procfile.Process], timeout: float = 90.0, every: float = 0.5):
    """Wait on a state (``ready()`` true), failing early if a process died."""
    deadline = time.monotonic() + timeout
    while True:
        if dead := procfile.dead(processes):
            log = next(p.log for p in processes if p.proc and p.proc.poll() is not None)
            raise RuntimeError(f"while waiting for {what}: {dead[0]} exited:\n{procfile.tail(log)}")
        try:
            value = ready()
            if value:
                return value
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def web_ready(port: int) -> bool:
    status, body = http_get(port, "/readyz")
    return status == 200 and json.loads(body)["status"] == "ready"


def workers_ready(pools: list[str]) -> bool:
    from config.celery import app

    expected = {f"{pool}@{socket.gethostname()}" for pool in pools}
    answered = {name for reply in app.control.ping(timeout=1.0) for name in reply}
    return expected <= answered


def tasks_run(pools: list[str]) -> dict[str, int]:
    """Tasks each worker pool has run since it started (Celery's own counters)."""
    from config.celery import app

    totals = {pool: 0 for pool in pools}
    for node, stats in (app.control.inspect(timeout=2.0).stats() or {}).items():
        pool = node.split("@", 1)[0]
        if pool in totals:
            totals[pool] += sum(stats.get("total", {}).values())
    return totals


def sweeps_running(redis_url: str, shards: list[str]) -> bool:
    """Beat schedules the sweep and the maintenance worker ran it on every shard: each leaves
    its broker-epoch marker in Redis."""
    import redis

    client = redis.Redis.from_url(redis_url)
    return all(client.exists(f"notify:broker-epoch:{alias}") for alias in shards)


def truncate_sent_data(target: Target) -> None:
    """Remove what the accept-max phase stored, so the stream starts on empty tables."""
    import psycopg

    for name in target.shard_dbs:
        with psycopg.connect(f"{PG}/{name}", autocommit=True) as conn:
            conn.execute("TRUNCATE notifications_notification, delivery_delivery, notifications_inboxitem")
    with psycopg.connect(f"{PG}/{target.global_db}", autocommit=True) as conn:
        conn.execute("TRUNCATE delivery_consolemessage")


def stored(target: Target, prefix: str = "") -> int:
    import psycopg

    total = 0
    for name in target.shard_dbs:
        with psycopg.connect(f"{PG}/{name}") as conn:
            total += conn.execute(
                "SELECT count(*) FROM notifications_notification WHERE idempotency_key LIKE %s", (f"{prefix}%",)
            ).fetchone()[0]
    return total


def final_check(target: Target) -> dict:
    """Every stored notification has its 3 deliveries, each sent or skipped with a reason."""
    import psycopg

    statuses: dict[str, int] = {}
    notifications = short = 0
    for name in target.shard_dbs:
        with psycopg.connect(f"{PG}/{name}") as conn:
            notifications += conn.execute("SELECT count(*) FROM notifications_notification").fetchone()[0]
            for status, reason, count in conn.execute(
                "SELECT status, reason, count(*) FROM delivery_delivery GROUP BY status, reason"
            ).fetchall():
                key = f"{status}:{reason}" if reason else status
                statuses[key] = statuses.get(key, 0) + count
            short += conn.execute(
                "SELECT count(*) FROM notifications_notification n WHERE "
                "(SELECT count(*) FROM delivery_delivery d WHERE d.notification_id = n.id) < 3"
            ).fetchone()[0]
    finished = sum(v for k, v in statuses.items() if k in ("sent", "delivered") or (k.startswith("skipped:")))
    return {
        "notifications_stored": notifications,
        "deliveries": sum(statuses.values()),
        "deliveries_expected": 3 * notifications,
        "notifications_with_fewer_than_3_deliveries": short,
        "deliveries_finished": finished,
        "deliveries_unfinished": sum(statuses.values()) - finished,
        "statuses": dict(sorted(statuses.items())),
    }


def send_probe(port: int, key: str, target: Target) -> float:
    """One send through the whole pipeline; seconds until all 3 deliveries are sent."""
    body = single_body("probe")(0)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    started = time.monotonic()
    conn.request("POST", SEND, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    if response.status != 202:
        raise RuntimeError(f"the probe send was answered {response.status}")
    rows: list = []

    def delivered() -> bool:
        nonlocal rows
        rows = step_rows(target_urls(target), "probe")
        return len(rows) == 3 and all(r[2] == "sent" for r in rows)

    wait_for("the probe send's 3 deliveries to be sent", delivered, [], timeout=60, every=0.1)
    return time.monotonic() - started


def target_urls(target: Target) -> list[str]:
    return [f"{PG}/{name}" for name in target.shard_dbs]


def run_step(rate: float, duration: float, tag: str, port: int, key: str) -> dict:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    result = asyncio.run(fixed_rate("127.0.0.1", port, SEND, single_body(tag), headers, rate=rate, duration=duration))
    # The stream ends with the last answer: when the web falls behind, that is after ``duration``.
    return {"http": result.summary(), "started_wall": result.started_wall, "ended_wall": result.started_wall + result.elapsed_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="50,100,200", help="offered single sends/s, one step each")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per step")
    parser.add_argument("--users", type=int, default=10_000, help="recipients seeded (each with a device)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between backlog/CPU samples")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="max seconds to wait for a step to drain")
    parser.add_argument("--accept-max-duration", type=float, default=8.0, help="single-send max of the web alone (0: skip)")
    parser.add_argument("--no-limits", action="store_true", help="skip the Redis/PostgreSQL limit measurements")
    parser.add_argument("--profile", action="store_true",
                        help="sample web and the email/push/inapp/maintenance workers with py-spy during the last step")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="extra env for the Procfile processes")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "delivery_stream.json"))
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    if args.profile and not profiling.available():
        sys.exit("--profile needs py-spy on PATH (pip install py-spy)")
    extra = dict(item.split("=", 1) for item in args.set)

    target = _describe(Target("stream", ROOT, DATABASES[0], list(DATABASES[1:]), REDIS_DB))
    os.environ.update(target.env)  # this process: limits, the celery ping
    for name in _DROPPED_ENV[1:]:
        os.environ.pop(name, None)
    print(f"preparing databases and {args.users:,} recipients ({target.commit})...", flush=True)
    prepare(target, args.users)
    import django

    django.setup()
    from django.conf import settings

    from config.queues import all_queues

    calibration = [calibrate()]
    limits = {} if args.no_limits else {"redis": redis_limits(), "postgres": postgres_limits(seconds=10)}
    work_dir = Path(tempfile.mkdtemp(prefix="bench-delivery-stream-"))
    port, ws_port = free_port(), free_port()
    # Beat keeps its schedule file in VAR_DIR and exits if that directory does not exist
    # (the services profile does not create it, unlike the embedded one).
    (work_dir / "var").mkdir()
    env = procfile_env(target, port, ws_port, work_dir / "var", extra)
    processes = procfile.parse()
    by_name = {p.name: p for p in processes}
    pools = [p.name.removeprefix("worker-") for p in processes if p.name.startswith("worker-")]
    results: dict = {"steps": []}
    accepted = 0
    with ExitStack() as stack:
        stack.callback(procfile.stop, processes)
        # The web alone first: the single-send max as bench/api_accept measures it (no workers).
        procfile.start([by_name["web"]], env, work_dir / "logs")
        wait_for("the web process to answer /readyz", lambda: web_ready(port), processes)
        if args.accept_max_duration:
            headers = {"Authorization": f"Bearer {target.key}", "Content-Type": "application/json"}
            print(f"single-send max of the web process alone ({args.accept_max_duration:g} s, 32 connections)...", flush=True)
            run = asyncio.run(closed_loop("127.0.0.1", port, SEND, single_body("max"), headers, concurrency=32, duration=args.accept_max_duration))
            results["accept_max"] = {**run.summary(), "stored": stored(target, "max-")}
            truncate_sent_data(target)
        rest = [p for p in processes if p.name != "web"]
        print(f"starting the rest of the Procfile: {', '.join(p.name for p in rest)} (logs in {work_dir / 'logs'})...", flush=True)
        procfile.start(rest, env, work_dir / "logs")
        wait_for("every worker pool to answer a ping", lambda: workers_ready(pools), processes)
        wait_for("beat and the maintenance worker to sweep every shard", lambda: sweeps_running(env["REDIS_URL"], settings.SHARD_ALIASES), processes)
        wait_for("daphne (ws) to answer /healthz", lambda: http_get(ws_port, "/healthz")[0] == 200, processes)
        results["probe_seconds"] = round(send_probe(port, target.key, target), 3)
        accepted += 1
        accountant = GroupAccountant({p.name: [p.pid] for p in processes}, list(DATABASES))
        print("warming up (20 sends/s for 5 s)...", flush=True)
        warm = run_step(20, 5, "warm", port, target.key)
        accepted += warm["http"]["ok"]
        wait_drained(target_urls(target), args.drain_timeout)
        accountant.refresh()  # worker children started by now
        sampler = Sampler(target_urls(target), env["REDIS_URL"], accountant, all_queues(), args.interval)
        sampler.start()
        stack.callback(sampler.stop)
        for number, rate in enumerate(rates):
            tag = f"step{number}"
            print(f"step {number + 1}/{len(rates)}: {rate:g} sends/s for {args.duration:g} s...", flush=True)
            profilers = {}
            if args.profile and number == len(rates) - 1:
                for p in processes:
                    if p.name in PROFILED:
                        stacks = work_dir / "logs" / f"{p.name}.stacks"
                        profilers[p.name] = (profiling.record(p.pid, args.duration, stacks), stacks)
            tasks_before = tasks_run(pools)
            cpu_before = accountant.snapshot()
            step = {"rate": rate, "duration": args.duration, "tag": tag, **run_step(rate, args.duration, tag, port, target.key)}
            cpu_stream_end = accountant.snapshot()
            accepted += step["http"]["ok"]
            if profilers:
                step["profile"] = {}
                for name, (profiler, stacks) in profilers.items():
                    _, errors = profiler.communicate(timeout=args.duration + 60)
                    step["profile"][name] = {**profiling.summarize(stacks), "stacks": str(stacks)}
                    if profiler.returncode:
                        step["profile"][name]["error"] = errors.decode(errors="replace")[-500:]
            step["drained"], step["drained_wall"] = wait_drained(target_urls(target), args.drain_timeout)
            cpu_after = accountant.snapshot()
            tasks_after = tasks_run(pools)
            step["tasks_run"] = {pool: tasks_after[pool] - tasks_before[pool] for pool in pools}
            time.sleep(args.interval * 1.5)  # the sampler's sample after the stream ended
            samples = sampler.between(step["started_wall"], step["ended_wall"] + args.interval)
            step.update(
                analyse_step(step_rows(target_urls(target), tag), step, samples,
                             group_delta(cpu_before, cpu_stream_end), group_delta(cpu_before, cpu_after))
            )  # fmt: skip
            logs = [p.log for p in processes if p.name.startswith("worker-")]
            step.update(log_batches(logs, step["started_wall"], step["drained_wall"]))
            results["steps"].append(step)
            print(stream_report.step_line(step), flush=True)
        sampler.stop()
        calibration.append(calibrate())
        results["final"] = final_check(target)
        results["final"]["accepted"] = accepted
        procfile.stop(processes)
    results = {
        "benchmark": "delivery_stream",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": target.commit,
        "commit_dirty": target.dirty,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {**vars(args), "procfile": {p.name: p.command for p in processes}, "env_overrides": extra},
        "limits": limits,
        "calibration_ms": calibration,
        "logs": str(work_dir / "logs"),
        **results,
    }
    output = write_results(args.output, results)
    print(stream_report.table(results))
    if profiled := [step for step in results["steps"] if step.get("profile")]:
        print(stream_report.profile_table(profiled[-1]))
    print(f"\nwrote {output}; process logs in {work_dir / 'logs'}")
    final = results["final"]
    if final["notifications_stored"] != accepted or final["deliveries_unfinished"] or final["deliveries"] != final["deliveries_expected"]:
        sys.exit("lost work: see 'accepted / stored / finished' above")


if __name__ == "__main__":
    main()
