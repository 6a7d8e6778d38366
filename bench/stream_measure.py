"""What bench/delivery_stream measures, read from the shard databases, Redis and /proc.

* ``Sampler``: a thread that, every interval, counts the backlog on every shard (deliveries
  queued / sending / retrying / scheduled), the doorbell messages waiting in the broker, and
  the CPU seconds of every process group so far.
* ``step_rows``: after a step, every delivery of the step's notifications with the times that
  matter (notification accepted, delivery sent or finished).
* ``analyse_step``: latency percentiles per channel, deliveries sent per second, the backlog's
  start / end / max and slope, CPU per component.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import psycopg
import redis

from bench.cpu import GroupAccountant, group_delta

PENDING = ("queued", "sending", "retrying", "scheduled")
FINISHED_OK = ("sent", "delivered")
# One statement, each count answered from the partial index whose predicate it repeats.
BACKLOG_SQL = """
SELECT (SELECT count(*) FROM delivery_delivery WHERE status = 'queued'),
       (SELECT count(*) FROM delivery_delivery WHERE status = 'sending'),
       (SELECT count(*) FROM delivery_delivery WHERE status IN ('scheduled', 'retrying'))
"""
STEP_SQL = r"""
SELECT substring(n.idempotency_key from '-(\d+)$')::int, d.channel, d.status, d.reason,
       extract(epoch from n.created_at)::float8, extract(epoch from d.sent_at)::float8,
       extract(epoch from d.updated_at)::float8
FROM notifications_notification n JOIN delivery_delivery d ON d.notification_id = n.id
WHERE n.idempotency_key LIKE %s
"""


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))], 1)

    return {"n": len(ordered), "p50": at(50), "p90": at(90), "p99": at(99), "max": round(ordered[-1], 1)}


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (per second)."""
    if len(points) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def backlog_counts(conns: list[psycopg.Connection]) -> dict[str, int]:
    totals = {"queued": 0, "sending": 0, "waiting": 0}
    for conn in conns:
        queued, sending, waiting = conn.execute(BACKLOG_SQL).fetchone()
        totals["queued"] += queued
        totals["sending"] += sending
        totals["waiting"] += waiting
    return totals


def connect(urls: list[str]) -> list[psycopg.Connection]:
    return [psycopg.connect(url, autocommit=True) for url in urls]


class Sampler(threading.Thread):
    def __init__(self, shard_urls: list[str], redis_url: str, accountant: GroupAccountant, queues: list[str], interval: float = 1.0):
        super().__init__(daemon=True, name="backlog-sampler")
        self.shard_urls, self.redis_url, self.accountant = shard_urls, redis_url, accountant
        self.queues, self.interval = queues, interval
        self.samples: list[dict] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        conns = connect(self.shard_urls)
        client = redis.Redis.from_url(self.redis_url)
        # kombu's Redis transport keeps a queue's priorities in lists <queue>\x06\x16<n>.
        lists = [name + suffix for name in self.queues for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169")]
        next_at = time.monotonic()
        while not self._stop_event.is_set():
            t = time.time()
            try:
                counts = backlog_counts(conns)
                with client.pipeline(transaction=False) as pipe:
                    for name in lists:
                        pipe.llen(name)
                    doorbells = sum(pipe.execute())
                self.samples.append({"t": t, **counts, "doorbells": doorbells, "cpu": self.accountant.snapshot()})
            except Exception as exc:  # a sample missed is reported, not fatal
                self.samples.append({"t": t, "error": f"{type(exc).__name__}: {exc}"})
            next_at += self.interval
            self._stop_event.wait(max(0.0, next_at - time.monotonic()))
        for conn in conns:
            conn.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)

    def between(self, start: float, end: float) -> list[dict]:
        return [s for s in list(self.samples) if start <= s["t"] <= end and "error" not in s]


def step_rows(shard_urls: list[str], tag: str) -> list[tuple]:
    rows = []
    for conn in connect(shard_urls):
        with conn:
            rows += conn.execute(STEP_SQL, (f"{tag}-%",)).fetchall()
    return rows


def wait_drained(shard_urls: list[str], timeout: float) -> tuple[bool, float]:
    """Poll until nothing is queued, sending, retrying or scheduled on any shard; (drained, when)."""
    conns = connect(shard_urls)
    deadline = time.monotonic() + timeout
    try:
        while True:
            counts = backlog_counts(conns)
            if not any(counts.values()):
                return True, time.time()
            if time.monotonic() > deadline:
                return False, time.time()
            time.sleep(0.2)
    finally:
        for conn in conns:
            conn.close()


def analyse_step(rows: list[tuple], step: dict, samples: list[dict], cpu_stream: dict, cpu_total: dict) -> dict:
    """Figures of one step. ``step`` has rate, started_wall, ended_wall (the last request
    answered: the stream), drained; the CPU seconds are those of the stream, and of the stream
    and the drain after it."""
    start, end, rate = step["started_wall"], step["ended_wall"], step["rate"]
    window = end - start
    latency: dict[str, list[float]] = defaultdict(list)
    from_scheduled: list[float] = []
    statuses: Counter = Counter()
    unfinished = 0
    sent_times: list[float] = []
    finished_at = start
    for index, channel, status, reason, accepted, sent, updated in rows:
        statuses[f"{status}:{reason}" if reason else status] += 1
        if status in FINISHED_OK and sent is not None:
            latency[channel].append((sent - accepted) * 1000)
            latency["all"].append((sent - accepted) * 1000)
            from_scheduled.append((sent - (start + index / rate)) * 1000)
            sent_times.append(sent)
            finished_at = max(finished_at, sent)
        elif status == "skipped" and reason:
            finished_at = max(finished_at, updated)
        else:
            unfinished += 1
    sent_during = sum(1 for t in sent_times if start <= t <= end)
    per_second = Counter(int(t - start) for t in sent_times)
    backlog = [(s["t"] - start, s["queued"] + s["sending"]) for s in samples]
    offered_deliveries = rate * 3
    growth = slope(backlog) * window
    drained = step.get("drained", False)
    deliveries = sum(statuses.values())
    finished = deliveries - unfinished
    return {
        "notifications": len({r[0] for r in rows}),
        "deliveries": deliveries,
        "statuses": dict(sorted(statuses.items())),
        "unfinished": unfinished,
        "latency_accept_to_sent_ms": {k: percentiles(v) for k, v in sorted(latency.items())},
        "latency_scheduled_to_sent_ms": percentiles(from_scheduled),
        "sent_per_s_during_stream": round(sent_during / window, 1),
        "sent_per_s_series": [per_second.get(second, 0) for second in range(int(math.ceil(finished_at - start)) + 1)],
        "backlog": {
            "start": backlog[0][1] if backlog else None,
            "end": backlog[-1][1] if backlog else None,
            "max": max((b for _, b in backlog), default=None),
            "mean": round(sum(b for _, b in backlog) / len(backlog), 1) if backlog else None,
            "slope_per_s": round(slope(backlog), 2),
            "growth_over_step": round(growth),
            # Flat: over the whole step the backlog grew by less than one second of offered work.
            "flat": bool(backlog) and growth < offered_deliveries,
            "series": [[round(t, 1), b, s["doorbells"], _worker_share(samples, i)] for i, ((t, b), s) in enumerate(zip(backlog, samples, strict=True))],
        },
        "drained": drained,
        "drain_s": round(finished_at - end, 2) if drained else None,
        "cpu_seconds_stream": cpu_stream,
        "cpu_seconds_stream_and_drain": cpu_total,
        "cpu_percent_of_one_core_stream": {k: round(v / window * 100, 1) for k, v in cpu_stream.items()},
        "cpu_ms_per_delivery": {k: round(v / finished * 1000, 3) for k, v in cpu_total.items()} if finished else {},
    }


def _worker_share(samples: list[dict], i: int) -> float | None:
    """CPU % of one core used by all worker pools between sample i-1 and i."""
    if i == 0:
        return None
    used = group_delta(samples[i - 1]["cpu"], samples[i]["cpu"])
    seconds = samples[i]["t"] - samples[i - 1]["t"]
    return round(sum(v for k, v in used.items() if k.startswith("worker-")) / seconds * 100, 1) if seconds else None


_BATCH_LINE = re.compile(r"^(\S+ \S+) INFO delivery\.providers\.console console provider recorded (\d+) (\w+) message")
_SWEEP_LINE = re.compile(r"^(\S+ \S+) INFO delivery\.services\.sweep sweep of \S+: (\d+) published again")


def _log_time(stamp: str) -> float:
    return time.mktime(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timetuple()) + int(stamp[-3:]) / 1000


def log_batches(logs: list[Path], start: float, end: float) -> dict:
    """From the workers' INFO lines: batches each channel's provider got between start and end
    (count, mean and max size), and deliveries the sweep published again."""
    sizes: dict[str, list[int]] = defaultdict(list)
    republished = 0
    for path in logs:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if match := _BATCH_LINE.match(line):
                if start <= _log_time(match.group(1)) <= end:
                    sizes[match.group(3)].append(int(match.group(2)))
            elif (match := _SWEEP_LINE.match(line)) and start <= _log_time(match.group(1)) <= end:
                republished += int(match.group(2))
    batches = {
        channel: {"batches": len(v), "mean_size": round(sum(v) / len(v), 1), "max_size": max(v)}
        for channel, v in sorted(sizes.items())
    }
    return {"batches": batches, "republished_by_sweep": republished}
