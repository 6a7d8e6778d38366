"""Loaded with ``-p`` before pytest-django reads settings: run the tests on the test profile
(local PostgreSQL global + shard databases, local Redis) unless told otherwise.

Under pytest-xdist each worker process gets its own Redis database (pytest-django already
gives it its own test databases), so the Celery queues, locks and caches of tests running
side by side never meet: worker gwN uses the configured database (15 by default) minus N.
"""

import os

os.environ.setdefault("NOTIFY_PROFILE", "test")

_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _xdist_worker.startswith("gw"):
    _base, _, _db = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15").rpartition("/")
    os.environ["REDIS_URL"] = f"{_base}/{int(_db or 0) - int(_xdist_worker[2:])}"
    # Redis pub/sub ignores the database number: give each worker's channel layer its own
    # prefix, or a frame for "alice" in one worker's test would reach the other's.
    os.environ.setdefault("CHANNEL_LAYER_PREFIX", f"asgi-{_xdist_worker}")
