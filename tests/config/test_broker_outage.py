"""A real worker rides out a Redis restart, and a worker that cannot goes down with a non-zero
exit status (so honcho or a Restart=on-failure unit brings it back).

The outage hits while a task is running and the worker has room for another (a BRPOP is in
flight): the case that stopped celery/kombu 5.7.0 workers (see config/broker.py).
"""

from __future__ import annotations

import re
import sys

import kombu.exceptions
import kombu.utils.functional
import pytest

from config.celery import app as celery_app
from config.queues import channel_queues
from delivery.models import ConsoleMessage
from tests.delivery.test_workers import send, statuses
from tests.support.factories import make_recipient, user_on
from tests.support.processes import ManagedProcess, PrivateRedis, publishing_to, service_env, start_worker, wait_for

pytestmark = [pytest.mark.django_db(databases="__all__", transaction=True), pytest.mark.timeout(120)]

SLOW = {"CONSOLE_PROVIDER_DELAY_SECONDS": "2"}


@pytest.fixture
def broker(tmp_path):
    redis = PrivateRedis(tmp_path)
    yield redis
    redis.process.stop()


def test_a_lost_broker_is_tried_again_every_two_seconds_at_most(monkeypatch):
    """What a worker's consumer and beat reconnect with (kombu's default pauses grow to 30 s)."""
    monkeypatch.setattr(kombu.utils.functional, "sleep", lambda seconds: None)
    pauses: list[float] = []
    connection = celery_app.connection_for_read("redis://127.0.0.1:1/0")  # nothing listens there
    with pytest.raises(kombu.exceptions.OperationalError):
        connection.ensure_connection(lambda exc, interval: pauses.append(interval), max_retries=6)
    assert pauses == [1.0, 1.5, 2.0, 2.0, 2.0, 2.0]


def stop_redis_mid_task(api, shards, broker: PrivateRedis) -> str:
    """Publish one email, stop Redis while the worker sends it; returns the notification id."""
    user = user_on(shards[0])
    make_recipient(user)
    with publishing_to(broker.url):
        notification_id = send(api, user, channels=["email"])
    wait_for(lambda: statuses(notification_id) == {"email": "sending"}, timeout=20, message="claimed")
    broker.stop()
    return notification_id


def test_worker_reconnects_after_redis_restarts_and_sends_what_is_published_next(api, shards, broker, tmp_path):
    env = {"CELERY_BROKER_URL": broker.url, "REDIS_URL": broker.url, **SLOW}
    worker = start_worker(tmp_path, channel_queues("email"), concurrency=2, **env)
    try:
        in_flight = stop_redis_mid_task(api, shards, broker)
        # Redis stays down through two of the worker's reconnect attempts (2 s apart).
        wait_for(lambda: worker.log().count("Cannot connect to") >= 2 or worker.proc.poll() is not None, timeout=20)
        assert worker.proc.poll() is None, f"the worker died:\n{worker.log()[-3000:]}"
        broker.start()
        wait_for(lambda: len(re.findall(r"Connected to ", worker.log())) >= 2, timeout=30, message="reconnect")

        with publishing_to(broker.url):
            user = user_on(shards[1])
            make_recipient(user)
            after = send(api, user, channels=["email"])
        wait_for(lambda: statuses(after) == {"email": "sent"}, timeout=30, message="sent after the restart")
        assert statuses(in_flight) == {"email": "sent"}  # the task running through the outage finished
        assert ConsoleMessage.objects.filter(notification_id=in_flight).count() == 1
        assert worker.proc.poll() is None
        assert "Unrecoverable error" not in worker.log()
    finally:
        worker.stop()


def test_a_worker_stopped_by_an_error_exits_non_zero_through_manage_py(api, shards, broker, tmp_path):
    """kombu's own Redis transport still has the bug config/broker.py works around: the worker
    stops on an unrecoverable error, and `manage.py worker` must report it (it exited 0)."""
    env = service_env(CELERY_BROKER_URL=broker.url, REDIS_URL=broker.url, CELERY_BROKER_TRANSPORT="redis", **SLOW)
    argv = [
        sys.executable, "manage.py", "worker", "email", "--",
        "--concurrency", "2", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    worker = ManagedProcess(argv, env, tmp_path / "manage-py-worker.log")
    try:
        worker.wait_for_log(" ready.", timeout=60)
        stop_redis_mid_task(api, shards, broker)
        try:
            wait_for(lambda: worker.proc.poll() is not None, timeout=30, message="the worker to exit")
        except AssertionError:
            pytest.fail(
                "kombu's own transport survived the outage: the fix in config/broker.py may no longer be "
                f"needed (drop it and this test)\n{worker.log()[-3000:]}"
            )
        assert "Unrecoverable error" in worker.log()
        assert worker.proc.returncode != 0, worker.log()[-3000:]
    finally:
        worker.stop()
