"""The measured phases of bench/delivery: preload-then-drain throughput, the SMS rate limit, an
outage. Each starts the channel's worker (its Procfile line) for the phase and stops it after,
and reads its figures from the deliveries' own timestamps in the shard databases."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench import procfile
from bench.cpu import GroupAccountant, group_delta
from bench.loadgen import fixed_rate

BULK = "/api/v1/notifications/bulk"
SEND = "/api/v1/notifications"
PENDING = ("scheduled", "queued", "sending", "retrying")
FINISHED_OK = ("sent", "delivered")
# Per channel: a type whose templates cover it, and the data its templates use.
TYPES = {
    "email": ("order_shipped", {"name": "Ada", "order_id": "O-1"}),
    "push": ("order_shipped", {"name": "Ada", "order_id": "O-1"}),
    "sms": ("security_alert", {"event": "A new sign-in"}),
}


@dataclass
class Context:
    """What every phase needs: the web's port and key, the shards, the fake, the logs."""

    port: int
    key: str
    shard_urls: list[str]
    databases: list[str]
    users: int
    fake_url: str
    env: dict[str, str]
    log_dir: Path
    groups: dict[str, list[int]]  # process groups running throughout (web, fake, beat…)
    worker_commands: dict[str, str] = field(default_factory=dict)  # channel -> Procfile command


# --- helpers ---------------------------------------------------------------------------------


def _post(port: int, path: str, key: str, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(
            "POST", path, body=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def fake_control(url: str, action: str, body: dict | None = None) -> dict:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        if body is None:
            conn.request("GET", f"/_control/{action}")
        else:
            conn.request(
                "POST", f"/_control/{action}", body=json.dumps(body), headers={"Content-Type": "application/json"}
            )
        return json.loads(conn.getresponse().read() or b"{}")
    finally:
        conn.close()


def _item(tag: str, i: int, channel: str, users: int, same_content: bool = False) -> dict:
    """A send for ``channel`` only; ``same_content``: every message renders the same (a
    campaign), which SendGrid batches as personalizations of one request."""
    type_key, data = TYPES[channel]
    return {
        "user_id": f"bench-user-{i % users}",
        "type": type_key,
        "data": data if same_content else {**data, "order_id": f"O-{i}"},
        "channels": [channel],
        "idempotency_key": f"{tag}-{i}",
    }


def preload(ctx: Context, tag: str, channel: str, count: int, same_content: bool = False, size: int = 1000) -> dict:
    """``count`` notifications for ``channel`` only, in bulk sends of ``size`` (3 at a time)."""

    def one(start: int) -> int:
        items = [_item(tag, i, channel, ctx.users, same_content) for i in range(start, min(start + size, count))]
        status, body = _post(ctx.port, BULK, ctx.key, json.dumps({"items": items}).encode())
        if status != 202 and status != 200:
            raise RuntimeError(f"bulk send answered {status}: {body[:300]!r}")
        return len(items)

    started = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        sent = sum(pool.map(one, range(0, count, size)))
    return {"accepted": sent, "seconds": round(time.monotonic() - started, 2)}


def pending(ctx: Context, channel: str, statuses: tuple[str, ...] = PENDING) -> int:
    """Deliveries of ``channel`` not finished (each phase starts with none left over)."""
    total = 0
    for url in ctx.shard_urls:
        with psycopg.connect(url) as conn:
            total += conn.execute(
                "SELECT count(*) FROM delivery_delivery WHERE channel = %s AND status = ANY(%s)",
                (channel, list(statuses)),
            ).fetchone()[0]
    return total


def rows(ctx: Context, tag: str) -> list[tuple[str, str, float | None, int]]:
    """(status, reason, sent_at epoch, attempts) of every delivery of the phase ``tag``."""
    found = []
    for url in ctx.shard_urls:
        with psycopg.connect(url) as conn:
            found += conn.execute(
                "SELECT d.status, d.reason, extract(epoch FROM d.sent_at)::float8, d.attempts FROM delivery_delivery d "
                "JOIN notifications_notification n ON n.id = d.notification_id WHERE n.idempotency_key LIKE %s",
                (f"{tag}-%",),
            ).fetchall()
    return found


def statuses(found: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status, reason, *_ in found:
        key = f"{status}:{reason}" if reason and status not in FINISHED_OK else status
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _wait(what: str, ready, processes: list[procfile.Process], timeout: float, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        if dead := procfile.dead(processes):
            raise RuntimeError(f"while waiting for {what}: {dead[0]}:\n{procfile.tail(processes[0].log)}")
        value = ready()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def start_worker(ctx: Context, channel: str, label: str, extra: dict[str, str]) -> procfile.Process:
    process = procfile.Process(f"worker-{channel}-{label}", ctx.worker_commands[channel], env=extra)
    procfile.start([process], ctx.env, ctx.log_dir)
    return process


def cpu_per_delivery(used: dict[str, float], delivered: int) -> dict[str, float]:
    keep = [*used.keys()]
    return {k: round(used[k] * 1000 / delivered, 3) for k in keep if delivered and not k.startswith("machine_")}


# --- phases ----------------------------------------------------------------------------------


def pending_tag(ctx: Context, tag: str) -> int:
    total = 0
    for url in ctx.shard_urls:
        with psycopg.connect(url) as conn:
            total += conn.execute(
                "SELECT count(*) FROM delivery_delivery d JOIN notifications_notification n ON n.id = d.notification_id "
                "WHERE n.idempotency_key LIKE %s AND d.status = ANY(%s)",
                (f"{tag}-%", list(PENDING)),
            ).fetchone()[0]
    return total


def throughput(
    ctx: Context, channel: str, parts: list[tuple[str, int, bool]], extra: dict[str, str], timeout: float
) -> list[dict]:
    """Preload each part's deliveries (label, count, same content?) in order with the worker
    stopped, start it, and time each part from its start (the first claim, then the previous
    part's last send) to its last ``sent_at``; CPU per process group over the same spans.
    bench/delivery gives one part per call: the worker claims oldest first, but its processes
    overlap the parts (a fast campaign batch goes out while a slow one is still sending), so
    several parts share their CPU figures; they are for a quick look with one worker start."""
    loaded = [preload(ctx, f"{channel}-{label}", channel, count, same) for label, count, same in parts]
    total = sum(count for _, count, _ in parts)
    _wait(f"{total} {channel} deliveries queued", lambda: pending(ctx, channel) >= total or None, [], 60)
    marks: list[tuple[float, dict, dict]] = []  # (wall time, cpu snapshot, provider requests)
    worker = start_worker(ctx, channel, parts[0][0], extra)
    started = time.time()
    try:
        accountant = GroupAccountant({**ctx.groups, "worker": [worker.pid]}, ctx.databases)
        # Time and CPU count from the first claim (the worker's start-up is not the channel's
        # cost): a batch's rows are stamped sent only after its provider call, so the first
        # sent_at would miss the first batches' work (with push, 4 x 500 at once).
        claimed = lambda: pending(ctx, channel, ("queued",)) < total  # noqa: E731
        _wait(f"the first {channel} claim", claimed, [worker], 120, every=0.05)
        first_seen = time.time()
        accountant.refresh()
        marks.append((first_seen, accountant.snapshot(), fake_control(ctx.fake_url, "counts")))
        for number, (label, _, _) in enumerate(parts):
            tag, later = f"{channel}-{label}", sum(count for _, count, _ in parts[number + 1 :])

            def done(tag: str = tag, later: int = later) -> bool:
                # The cheap count (a partial index) first; the join only near the part's end.
                return pending(ctx, channel) <= later and pending_tag(ctx, tag) == 0

            _wait(f"every delivery of {tag} finished", done, [worker], timeout, 0.25)
            marks.append((time.time(), accountant.snapshot(), fake_control(ctx.fake_url, "counts")))
    finally:
        stopping = time.monotonic()
        procfile.stop([worker])
        stop_s = time.monotonic() - stopping
    results = []
    part_start = first_seen
    for number, ((label, _, same), load) in enumerate(zip(parts, loaded, strict=True)):
        found = rows(ctx, f"{channel}-{label}")
        sent_at = sorted(r[2] for r in found if r[2] is not None)
        span = sent_at[-1] - sent_at[0] if len(sent_at) > 1 else 0.0
        (t0, before, requests_before), (t1, after, requests_after) = marks[number], marks[number + 1]
        used = group_delta(before, after)
        sent = sum(1 for r in found if r[0] in FINISHED_OK)
        # A later part starts while the previous one's last batches are still out: its span is
        # the longer (the more conservative) of "since the previous part's last send" and
        # "its own first send to last".
        elapsed = max(sent_at[-1] - part_start, span if number else 0.0) if sent_at else 0.0
        results.append(
            {
                "channel": channel,
                "label": label,
                "env": extra,
                "same_content": same,
                "preload": load,
                "deliveries": len(found),
                "sent": sent,
                "statuses": statuses(found),
                "first_claim_to_last_sent_s": round(elapsed, 3),
                "per_s": round(sent / elapsed, 1) if elapsed > 0 else None,
                "first_to_last_sent_s": round(span, 3),
                "per_s_first_to_last_sent": round((len(sent_at) - 1) / span, 1) if span else None,
                "worker_start_to_first_claim_s": round(first_seen - started, 2) if number == 0 else None,
                "worker_stop_s": round(stop_s, 2),
                "provider_requests": {
                    k: v - requests_before.get(k, 0)
                    for k, v in requests_after.items()
                    if v != requests_before.get(k, 0) and not k.startswith("control.")
                },
                "cpu_seconds": used,
                "cpu_window_s": round(t1 - t0, 2),
                "cpu_ms_per_delivery": cpu_per_delivery(used, sent),
                "log": str(worker.log),
            }
        )
        part_start = sent_at[-1] if sent_at else part_start
    return results


def sms_rate(ctx: Context, seconds: float, limit: float, timeout: float) -> dict:
    """A backlog larger than ``seconds`` of the limit, sent by the SMS worker: what was sent
    in the first ``seconds`` after the first send, against the configured rate."""
    tag = "sms-rate"
    count = int(limit * (seconds + 8))  # the backlog outlasts the window
    loaded = preload(ctx, tag, "sms", count)
    _wait(f"{count} sms deliveries queued", lambda: pending(ctx, "sms") >= count or None, [], 60)
    worker = start_worker(ctx, "sms", "rate", {})
    try:
        accountant = GroupAccountant({**ctx.groups, "worker": [worker.pid]}, ctx.databases)
        _wait("the first sms send", lambda: pending(ctx, "sms") < count, [worker], 120, every=0.05)
        accountant.refresh()
        before = accountant.snapshot()
        _wait("every sms delivery finished", lambda: pending(ctx, "sms") == 0, [worker], timeout, every=0.5)
        after = accountant.snapshot()
    finally:
        procfile.stop([worker])
    found = rows(ctx, tag)
    sent_at = sorted(r[2] for r in found if r[2] is not None)
    first = sent_at[0]
    window = [t for t in sent_at if t < first + seconds]
    per_second: dict[int, int] = {}
    for t in window:
        per_second[int(t - first)] = per_second.get(int(t - first), 0) + 1
    achieved = len(window) / seconds
    steady = [per_second.get(s, 0) for s in range(1, int(seconds))]  # after the bucket's initial burst
    used = group_delta(before, after)
    sent = sum(1 for r in found if r[0] in FINISHED_OK)
    return {
        "preload": loaded,
        "deliveries": len(found),
        "sent": sent,
        "statuses": statuses(found),
        "limit_per_s": limit,
        "window_s": seconds,
        "sent_in_window": len(window),
        "achieved_per_s": round(achieved, 3),
        "deviation_pct": round((achieved - limit) * 100 / limit, 2),
        "steady_per_s": round(sum(steady) / len(steady), 3) if steady else None,
        "max_in_one_second": max(per_second.values()) if per_second else 0,
        "backlog_outlasted_window": sent_at[-1] >= first + seconds,
        "per_second": [per_second.get(s, 0) for s in range(int(seconds))],
        "cpu_seconds": used,
        "cpu_ms_per_delivery": cpu_per_delivery(used, sent),
        "log": str(worker.log),
    }


def outage(
    ctx: Context, rate: float, before_s: float, outage_s: float, after_s: float, cooldown: float, timeout: float
) -> dict:
    """A steady stream of single email sends; the fake answers 503 to SendGrid for
    ``outage_s`` in the middle. Nothing may be lost; how long after the fake recovered is the
    backlog clear?"""
    tag = "outage"
    worker = start_worker(ctx, "email", "outage", {})
    backlog: list[tuple[float, int]] = []
    try:
        from config.celery import app  # noqa: F401  (the ping below needs the app configured)

        _wait("the email worker to answer a ping", lambda: _pinged("email"), [worker], 90, every=0.5)
        accountant = GroupAccountant({**ctx.groups, "worker": [worker.pid]}, ctx.databases)
        headers = {"Authorization": f"Bearer {ctx.key}", "Content-Type": "application/json"}

        def body(i: int) -> bytes:
            return json.dumps({k: v for k, v in _item(tag, i, "email", ctx.users).items()}).encode()

        marks: dict[str, float] = {}

        async def scenario() -> dict:
            stream = asyncio.create_task(
                fixed_rate(
                    "127.0.0.1", ctx.port, SEND, body, headers, rate=rate, duration=before_s + outage_s + after_s
                )
            )
            loop = asyncio.get_running_loop()
            await asyncio.sleep(before_s)
            await loop.run_in_executor(
                None, fake_control, ctx.fake_url, "outage", {"route": "sendgrid.send", "status": 503}
            )
            marks["outage_started"] = time.time()
            await asyncio.sleep(outage_s)
            await loop.run_in_executor(None, fake_control, ctx.fake_url, "recover", {"route": "sendgrid.send"})
            marks["recovered"] = time.time()
            return (await stream).summary()

        accountant.refresh()
        cpu_before = accountant.snapshot()
        sampler_stop = False

        def sample() -> None:
            while not sampler_stop:
                backlog.append((time.time(), pending(ctx, "email")))
                time.sleep(1.0)

        with ThreadPoolExecutor(1) as pool:
            sampling = pool.submit(sample)
            http_summary = asyncio.run(scenario())
            stream_end = time.time()
            _wait(
                "every email of the outage finished", lambda: pending(ctx, "email") == 0, [worker], timeout, every=0.5
            )
            cleared = time.time()
            sampler_stop = True
            sampling.result()
        cpu_after = accountant.snapshot()
    finally:
        procfile.stop([worker])
    found = rows(ctx, tag)
    sent_at = sorted(r[2] for r in found if r[2] is not None)
    sent = sum(1 for r in found if r[0] in FINISHED_OK)
    during = [t for t in sent_at if marks["outage_started"] + 1 < t < marks["recovered"]]
    after_recovery = [t for t in sent_at if t >= marks["recovered"]]
    return {
        "offered_per_s": rate,
        "before_s": before_s,
        "outage_s": outage_s,
        "after_s": after_s,
        "circuit_cooldown_s": cooldown,
        "http": http_summary,
        "accepted": http_summary["ok"] if "ok" in http_summary else None,
        "deliveries": len(found),
        "sent": sent,
        "lost": len(found) - sent,
        "statuses": statuses(found),
        "attempts_max": max((r[3] for r in found), default=0),
        "deliveries_retried": sum(1 for r in found if r[3] > 1),
        "sent_during_outage": len(during),
        "first_sent_after_recovery_s": round(after_recovery[0] - marks["recovered"], 2) if after_recovery else None,
        "backlog_cleared_after_recovery_s": _cleared_after(backlog, marks, rate),
        "everything_finished_after_recovery_s": round(cleared - marks["recovered"], 2),
        "last_sent_after_stream_end_s": round(sent_at[-1] - stream_end, 2) if sent_at else None,
        "backlog_max": max((b for _, b in backlog), default=0),
        "backlog": [(round(t - marks["outage_started"], 1), b) for t, b in backlog],
        "cpu_seconds": group_delta(cpu_before, cpu_after),
        "log": str(worker.log),
    }


def _pinged(pool: str) -> bool:
    import socket

    from config.celery import app

    return any(f"{pool}@{socket.gethostname()}" in reply for reply in app.control.ping(timeout=1.0))


def _cleared_after(backlog: list[tuple[float, int]], marks: dict[str, float], rate: float) -> float | None:
    """Seconds from the fake's recovery until the backlog is back to what it was before the
    outage (its highest sample then, or one second of the stream if that is more)."""
    normal = max([b for t, b in backlog if t < marks["outage_started"]] + [rate])
    later = [t for t, b in backlog if t >= marks["recovered"] and b <= normal]
    return round(later[0] - marks["recovered"], 2) if later else None
