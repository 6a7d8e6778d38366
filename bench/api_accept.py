"""bench/api_accept: how fast the service API accepts notifications, on this machine.

Services profile: gunicorn on PostgreSQL (a global database and two shard databases) and Redis.
Measures, in one run:

* single sends at a fixed offered rate (default 200 req/s): p50 / p99 latency;
* single sends, closed loop: the maximum sustained requests/s;
* bulk sends of 1000 items, closed loop: notifications/s accepted;
* beside them, the limits of the same machine: Redis SET ops/s (redis-benchmark) and
  PostgreSQL COPY rows/s and single-row INSERT transactions/s (pgbench).

Workers are not started: this measures acceptance (validate, idempotency, render, persist,
publish). Prints a table and writes bench/results/api_accept.json.

    python -m bench.api_accept [--duration 8] [--rounds 3] [--rate 200] [--web-processes 5]

With ``--baseline REF`` it also serves commit REF of this repository (a temporary git worktree
under /tmp, with its own databases notify_bench_base* and Redis DB 13, migrated and seeded by
its own code) and runs every phase of every round on both servers back to back, alternating
which goes first, so that this machine's swings in speed hit both alike. It reports both
medians and the ratio current/baseline per measure:

    python -m bench.api_accept --baseline main --rounds 6
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import cpu, report  # noqa: E402
from bench.limits import postgres_limits  # noqa: E402
from bench.loadgen import closed_loop, fixed_rate  # noqa: E402
from bench.results import write_results  # noqa: E402
from bench.targets import (  # noqa: E402
    Target,
    baseline_target,
    current_target,
    prepare,
    start_web,
    stop_web,
    stored_notifications,
)

USERS = 10_000
TYPE = "order_shipped"  # email + push + inapp: 5 rows per notification
PHASES = report.PHASES


# --- limits of this machine ---------------------------------------------------------------


def redis_limits() -> dict:
    db = os.environ["REDIS_URL"].rsplit("/", 1)[1]

    def run(pipeline: int) -> float:
        out = subprocess.run(
            ["redis-benchmark", "-h", "127.0.0.1", "-p", "6379", "--dbnum", db, "-t", "set", "-n", "200000",
             "-c", "50", "-P", str(pipeline), "-q", "--csv"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        row = [line for line in out.splitlines() if line.startswith('"SET"')][0]
        return float(row.split(",")[1].strip('"'))

    return {"set_ops_per_s": run(1), "set_ops_per_s_pipelined_16": run(16)}


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


def measure_api(targets: list[Target], args) -> dict[str, dict]:
    """Each phase runs ``args.rounds`` times, interleaved, so a slow spell of this (shared,
    noisy) machine hits every phase alike; figures are the medians over the rounds. With more
    than one target, each phase of a round runs on every target back to back (one server
    loaded at a time), and which target goes first alternates from round to round."""
    send, bulk = "/api/v1/notifications", "/api/v1/notifications/bulk"

    def headers(target: Target) -> dict[str, str]:
        return {"Authorization": f"Bearer {target.key}", "Content-Type": "application/json"}

    async def with_cpu(target: Target, coroutine):
        before = cpu.snapshot(target.pids)
        result = await coroutine
        summary = result.summary()
        used = cpu.delta(before, cpu.snapshot(target.pids))
        summary["cpu_seconds"] = used
        if summary["items_ok"]:
            summary["cpu_us_per_item"] = {k: round(v / summary["items_ok"] * 1e6, 1) for k, v in used.items()}
        return summary

    def phase(target: Target, name: str, round_no: int):
        tag, port, head = f"{name}{round_no}", target.port, headers(target)
        if name == "single_at_rate":
            return fixed_rate("127.0.0.1", port, send, single_body(tag), head, rate=args.rate, duration=args.duration)
        if name == "single_max":
            return closed_loop("127.0.0.1", port, send, single_body(tag), head, concurrency=args.concurrency, duration=args.duration)
        return closed_loop(
            "127.0.0.1", port, bulk, bulk_body(tag, 1000), head, concurrency=args.bulk_concurrency,
            duration=args.duration, items_per_request=1000,
        )  # fmt: skip

    async def warm_up(target: Target) -> dict:
        port, head = target.port, headers(target)
        warm = await closed_loop("127.0.0.1", port, send, single_body("warm"), head, concurrency=4, duration=3)
        warm_bulk = await closed_loop(
            "127.0.0.1", port, bulk, bulk_body("warmbulk", 1000), head, concurrency=1, duration=3, items_per_request=1000
        )
        return {"warmup_single": warm.summary(), "warmup_bulk": warm_bulk.summary()}

    async def run() -> dict[str, dict]:
        phases = [name for name in PHASES if name in args.phases]
        results = {}
        for target in targets:
            results[target.name] = {**await warm_up(target), "rounds": {name: [] for name in phases}}
        for round_no in range(args.rounds):
            order = targets if round_no % 2 == 0 else targets[::-1]
            for name in phases:
                for target in order:
                    results[target.name]["rounds"][name].append(await with_cpu(target, phase(target, name, round_no)))
        return results

    return asyncio.run(run())


def calibrate() -> float:
    """ms for a fixed pure-Python loop: how fast this machine's CPU was at that moment."""
    started = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i * i
    return round((time.perf_counter() - started) * 1000, 1)




def run_record(target: Target, api: dict) -> dict:
    return {
        "commit": target.commit,
        "commit_dirty": target.dirty,
        "api": api,
        "accepted": report.accepted(api),
        "stored_notifications": stored_notifications(target),
    }


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
    parser.add_argument("--baseline", metavar="REF", help="also measure this git commit, interleaved, and compare")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "api_accept.json"))
    args = parser.parse_args()
    args.phases = [name.strip() for name in args.phases.split(",")]

    current = current_target()
    # This process measures the machine's limits with the current tree's settings.
    os.environ.update(current.env)
    with ExitStack() as stack:
        targets = [current]
        if args.baseline:
            print(f"checking out {args.baseline} in a temporary worktree...", flush=True)
            targets.append(stack.enter_context(baseline_target(args.baseline)))
            if args.rounds % 2:
                print(f"note: with {args.rounds} rounds the current commit goes first once more often; use an even number")
        for target in targets:
            print(f"preparing databases and {USERS:,} recipients for {target.name} ({target.commit})...", flush=True)
            prepare(target, USERS)
        import django

        django.setup()
        calibration = [calibrate()]
        limits = {"redis": redis_limits(), "postgres": postgres_limits(seconds=10)}
        for target in targets:
            stack.callback(stop_web, target)
            start_web(target, args.web_processes, args.server, args.threads, args.worker_class)
        print(
            f"measuring the API ({args.server} {args.worker_class}, {args.web_processes} process(es) x {args.threads} thread(s); "
            f"{args.rounds} rounds of {args.duration:g} s per phase"
            + (f"; {' and '.join(f'{t.name} {t.commit}' for t in targets)} interleaved" if len(targets) > 1 else "")
            + ")...",
            flush=True,
        )
        api = measure_api(targets, args)
        for target in targets:
            stop_web(target)
        calibration.append(calibrate())
        runs = {target.name: run_record(target, api[target.name]) for target in targets}
    results = {
        "benchmark": "api_accept",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **runs["current"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": vars(args),
        "limits": limits,
        "calibration_ms": calibration,
    }
    if "baseline" in runs:
        results["baseline"] = {"ref": args.baseline, **runs["baseline"]}
        results["comparison"] = report.compare(api["current"], api["baseline"], args.phases)
    output = write_results(args.output, results)
    print(report.compare_table(results, args) if "baseline" in runs else report.table(results, args))
    print(f"\nwrote {output}")
    lost = [f"{name}: {run['stored_notifications']} stored of {run['accepted']} accepted"
            for name, run in runs.items() if run["stored_notifications"] != run["accepted"]]  # fmt: skip
    if lost:
        sys.exit("stored != accepted: " + "; ".join(lost))


if __name__ == "__main__":
    main()
