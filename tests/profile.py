"""Loaded with ``-p`` before pytest-django reads settings: run the tests on the test profile
(local PostgreSQL global + shard databases, local Redis) unless told otherwise.

Under pytest-xdist each worker process gets its own Redis database (pytest-django already
gives it its own test databases), so the Celery queues, locks and caches of tests running
side by side never meet: gw0 uses DB 15, gw1 DB 14, and so on.
"""

import os

os.environ.setdefault("NOTIFY_PROFILE", "test")

_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _xdist_worker.startswith("gw") and "REDIS_URL" not in os.environ:
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{15 - int(_xdist_worker[2:])}"
