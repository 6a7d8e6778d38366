"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from django.conf import settings
from django.db import connections
from django.http import JsonResponse

from config.celery import app as celery_app
from config.redis import get_redis


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


def readyz(request):
    """Every database, Redis and the broker answer; 503 naming what does not."""
    checks = {f"database:{alias}": (lambda a=alias: _check_database(a)) for alias in settings.DATABASES}
    checks["redis"] = _check_redis
    checks["broker"] = _check_broker
    results, ready = {}, True
    for name, check in checks.items():
        try:
            results[name] = check()
        except Exception as exc:  # each failure is reported, not raised
            results[name] = f"error: {type(exc).__name__}"
            ready = False
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": results}, status=200 if ready else 503)
