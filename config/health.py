"""Liveness and readiness for load balancers and orchestrators.

``/healthz``: the process is up. ``/readyz``: can this process do its job? Every dependency
is checked and reported, but only the ones without which the API cannot accept a
notification make it answer 503: the global database (API clients, types, templates) and
every shard being down. Redis (idempotency fast path) and the broker (publishing) being
down only degrade it: sends are still accepted and stored, the database constraint answers
repeats, and the outbox sweep publishes later. A load balancer must not turn a Redis blip
into a full outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connections
from django.http import JsonResponse

from config.celery import app as celery_app
from config.redis import get_redis
from config.sharding import shard_aliases


def healthz(request):
    """The process is up and serving."""
    return JsonResponse({"status": "ok"})


def _check_database(alias: str) -> str:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_redis() -> str:
    client = get_redis()
    if client is None:
        return "not configured"
    client.ping()
    return "ok"


def _check_broker() -> str:
    if settings.CELERY_BROKER_URL.startswith("memory://"):
        return "in-process"
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
    return "ok"


def _run(check: Callable[[], str]) -> dict:
    started = time.monotonic()
    try:
        detail, ok = check(), True
    except Exception as exc:  # each failure is reported, not raised
        detail, ok = f"unreachable: {type(exc).__name__}", False
    return {"ok": ok, "detail": detail, "ms": round((time.monotonic() - started) * 1000, 1)}


def readiness() -> tuple[str, dict[str, dict]]:
    """(status, checks): status is ready, degraded (accepting, something is down) or
    unavailable (cannot accept)."""
    checks = {"database:default": _run(lambda: _check_database("default"))}
    for alias in shard_aliases():
        checks[f"database:{alias}"] = _run(lambda a=alias: _check_database(a))
    checks["redis"] = _run(_check_redis)
    checks["broker"] = _run(_check_broker)
    shards_up = [checks[f"database:{alias}"]["ok"] for alias in shard_aliases()]
    if not checks["database:default"]["ok"] or not any(shards_up):
        status = "unavailable"
    elif all(check["ok"] for check in checks.values()):
        status = "ready"
    else:
        status = "degraded"
    return status, checks


def readyz(request):
    status, checks = readiness()
    degraded = sorted(name for name, check in checks.items() if not check["ok"])
    body = {"status": status, "degraded": degraded, "checks": checks}
    return JsonResponse(body, status=503 if status == "unavailable" else 200)
