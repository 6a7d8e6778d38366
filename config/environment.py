"""Reading settings from the environment, and the database entries the profiles build from
it: helpers for config/settings.py (which stays the one place settings are defined)."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env(name)
    return default if value is None else int(value)


def env_float(name: str, default: float) -> float:
    value = env(name)
    return default if value is None else float(value)


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


def postgres_database(url: str, *, pool_max: int) -> dict:
    config = dj_database_url.parse(url)
    options = config.setdefault("OPTIONS", {})
    # The send path's own statements (server-side binding) are prepared after this many runs,
    # sparing PostgreSQL a parse and plan per notification. Django's ORM queries use
    # client-side binding and are unaffected. Empty disables it (PgBouncer < 1.21 in
    # transaction mode cannot follow prepared statements).
    threshold = env("DB_PREPARE_THRESHOLD", "5")
    options["prepare_threshold"] = int(threshold) if threshold else None
    if env_bool("DB_POOL", False):
        # For ASGI servers, which run each sync view in a new thread: a process-wide pool.
        # (Measured: its background threads cost ~35% per request under gunicorn's threads.)
        options["pool"] = {"min_size": 1, "max_size": pool_max, "timeout": 10}
        config["CONN_MAX_AGE"] = 0
    else:
        # gunicorn threads and Celery processes are long-lived: one persistent connection each.
        config["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 600)
        config["CONN_HEALTH_CHECKS"] = True
    return config


def sqlite_database(path: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
