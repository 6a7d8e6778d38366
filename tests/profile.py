"""Loaded with ``-p`` before pytest-django reads settings: run the tests on the test profile
(local PostgreSQL global + shard databases, local Redis) unless told otherwise."""

import os

os.environ.setdefault("NOTIFY_PROFILE", "test")
