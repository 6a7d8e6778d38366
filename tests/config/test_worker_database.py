"""A real worker and its database connections: kept across tasks, replaced after the database
dropped them, and a task that meets an unreachable database is retried, not dropped."""

from __future__ import annotations

import uuid
from contextlib import contextmanager

import pytest
from django.db import connections

from config.queues import channel_queues
from delivery.models import ConsoleMessage
from tests.delivery.test_workers import deliveries, send, statuses
from tests.support.factories import make_recipient, user_on
from tests.support.processes import start_worker, wait_for

pytestmark = [pytest.mark.django_db(databases="__all__", transaction=True), pytest.mark.timeout(120)]


def database_name(alias: str) -> str:
    return connections[alias].settings_dict["NAME"]


def backends(application_name: str, alias: str) -> list[int]:
    """PostgreSQL backends (pids) that a process named ``application_name`` holds on ``alias``."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = %s",
            [application_name, database_name(alias)],
        )
        return [pid for (pid,) in cursor.fetchall()]


def terminate_backends(application_name: str) -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", [application_name]
        )
        return len(cursor.fetchall())


def send_and_wait(api, user: str) -> str:
    notification_id = send(api, user, channels=["email"])
    wait_for(lambda: statuses(notification_id) == {"email": "sent"}, timeout=30, message="sent")
    return notification_id


def test_worker_keeps_its_connection_across_tasks_and_replaces_one_the_database_dropped(api, shards, tmp_path):
    name = f"worker-{uuid.uuid4().hex[:8]}"  # libpq reports PGAPPNAME as application_name
    worker = start_worker(tmp_path, channel_queues("email"), PGAPPNAME=name)
    try:
        user = user_on(shards[0])
        make_recipient(user)
        seen: set[int] = set()
        for _ in range(4):
            send_and_wait(api, user)
            (pid,) = wait_for(lambda: backends(name, shards[0]), message="the worker's shard connection")
            seen.add(pid)
        assert len(seen) == 1, f"one connection for four tasks, not {len(seen)}"

        assert terminate_backends(name) >= 1  # as a database restart would
        wait_for(lambda: not backends(name, shards[0]), message="the worker's backends gone")
        after = send_and_wait(api, user)
        (replacement,) = wait_for(lambda: backends(name, shards[0]), message="a new shard connection")
        assert replacement not in seen
        # The health check replaced the dead connection before the task used it: no error, no retry.
        (delivery,) = deliveries(after)
        assert delivery.attempts == 1
        assert "; retry " not in worker.log()
    finally:
        worker.stop()


@contextmanager
def refusing_connections(alias: str):
    """New connections to ``alias``'s database are refused (existing ones keep working)."""
    name = database_name(alias)
    with connections["default"].cursor() as cursor:
        cursor.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    try:
        yield
    finally:
        with connections["default"].cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


def test_a_task_that_cannot_reach_its_database_is_retried_until_it_can(api, shards, tmp_path):
    user = user_on(shards[0])
    make_recipient(user)
    notification_id = send(api, user, channels=["email"])  # queued; no worker consumes it yet
    with refusing_connections(shards[0]):
        worker = start_worker(tmp_path, channel_queues("email"))
        try:
            # The worker's own report is all there is to see: the row stays queued meanwhile.
            wait_for(lambda: worker.log().count("retry: Retry in") >= 2, timeout=30, message="two retries")
            assert statuses(notification_id) == {"email": "queued"}
        except BaseException:
            worker.stop()
            raise
    try:
        wait_for(lambda: statuses(notification_id) == {"email": "sent"}, timeout=30, message="sent once reachable")
        assert ConsoleMessage.objects.filter(notification_id=notification_id).count() == 1
    finally:
        worker.stop()
