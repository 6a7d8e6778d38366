"""Real Celery workers (and beat) on the test databases and Redis: delivery end to end,
durability when the broker is down or a worker is killed, and strict priority order."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from contextlib import contextmanager

import kombu.pools
import pytest

from config.celery import app as celery_app
from config.queues import all_queues, channel_queues
from delivery.models import ConsoleMessage, Delivery
from delivery.services.sweep import sweep
from tests.support.factories import make_recipient, send_body, user_on
from tests.support.processes import ManagedProcess, service_env, start_worker, wait_for

pytestmark = [pytest.mark.django_db(databases="__all__", transaction=True), pytest.mark.timeout(180)]

URL = "/api/v1/notifications"


@pytest.fixture
def workers(tmp_path):
    started: list[ManagedProcess] = []

    def start(queues, **env):
        process = start_worker(tmp_path, queues, **env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def deliveries(notification_id: str) -> list[Delivery]:
    from config.sharding import shard_for_id

    return list(Delivery.objects.using(shard_for_id(notification_id)).filter(notification_id=notification_id))


def statuses(notification_id: str) -> dict[str, str]:
    return {d.channel: d.status for d in deliveries(notification_id)}


def send(api, user: str, **overrides) -> str:
    response = api.post(URL, send_body(user, **overrides), format="json")
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def test_sent_end_to_end_by_a_real_worker(api, shards, workers):
    workers(all_queues())
    user = user_on(shards[1])
    make_recipient(user, email="e2e@example.com", phone="+14155550199")
    api.post(f"/api/v1/recipients/{user}/devices", {"platform": "android", "token": "tok-e2e"}, format="json")

    notification_id = send(api, user, type="security_alert", data={"event": "New sign-in"})

    wait_for(lambda: set(statuses(notification_id).values()) == {"sent"}, timeout=30, message="all channels sent")
    body = api.get(f"{URL}/{notification_id}").json()
    assert body["status"] == "sent"
    assert {c["channel"]: c["status"] for c in body["channels"]} == {
        "email": "sent", "sms": "sent", "push": "sent", "inapp": "sent"
    }  # fmt: skip
    recorded = {m.channel: m for m in ConsoleMessage.objects.filter(notification_id=notification_id)}
    assert recorded["email"].address == "e2e@example.com"
    assert recorded["email"].payload["subject"] == "Security alert: New sign-in"
    assert recorded["sms"].address == "+14155550199"
    assert recorded["push"].address == "tok-e2e"
    assert recorded["inapp"].payload["title"] == "Security alert: New sign-in"


@contextmanager
def broker_unreachable():
    """Point this process's Celery publisher at a port nothing listens on."""
    original = celery_app.conf.broker_url

    def reset():
        # kombu keeps one pool per broker URL process-wide; forget them all, not just ours.
        kombu.pools.reset()
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    reset()
    try:
        yield
    finally:
        celery_app.conf.broker_url = original
        reset()


def test_broker_down_at_publish_time_then_the_sweep_delivers(api, shards, workers, tmp_path):
    user = user_on(shards[0])
    make_recipient(user)
    with broker_unreachable():
        started = time.monotonic()
        notification_id = send(api, user, channels=["email", "inapp"])
        assert time.monotonic() - started < 5  # the API does not hang on the broker
    assert all(d.published_at is None and d.status == "queued" for d in deliveries(notification_id))

    workers([*channel_queues("email"), *channel_queues("inapp"), "core"])
    beat = ManagedProcess(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
         "--schedule", str(tmp_path / "beat-schedule")],
        service_env(SWEEP_INTERVAL_SECONDS="0.5"),
        tmp_path / "beat.log",
    )  # fmt: skip
    try:
        wait_for(lambda: set(statuses(notification_id).values()) == {"sent"}, timeout=40, message="sent after sweep")
    finally:
        beat.stop()
    assert ConsoleMessage.objects.filter(notification_id=notification_id).count() == 2


SLOW = {"CONSOLE_PROVIDER_DELAY_SECONDS": "2", "DELIVERY_LEASE_SECONDS": "3"}


def kill_mid_send(api, shards, workers, *, whole_worker: bool):
    user = user_on(shards[1])
    make_recipient(user)
    worker = workers(channel_queues("email"), **SLOW)
    notification_id = send(api, user, channels=["email"])
    wait_for(lambda: statuses(notification_id) == {"email": "sending"}, timeout=20, message="claimed")
    if whole_worker:
        worker.kill_group(signal.SIGKILL)
    else:
        children = worker.children()
        assert children, "prefork worker has a child process"
        for pid in children:
            os.kill(pid, signal.SIGKILL)
    assert ConsoleMessage.objects.filter(notification_id=notification_id).count() == 0
    return notification_id, worker


def recover(notification_id: str) -> None:
    """Once the lease has expired, whichever comes first sends it: the redelivered task (when
    the pool noticed the dead child late) or the sweep that beat runs every second."""
    (delivery,) = deliveries(notification_id)
    wait_for(lambda: time.time() > delivery.lease_expires_at.timestamp() + 0.2, timeout=10)
    sweep()
    wait_for(lambda: statuses(notification_id) == {"email": "sent"}, timeout=30, message="sent after recovery")
    time.sleep(1.5)  # room for a wrong second send to show up


def test_worker_child_killed_mid_send_is_redelivered_and_sent_exactly_once(api, shards, workers):
    notification_id, worker = kill_mid_send(api, shards, workers, whole_worker=False)
    # The pool notices the dead child and requeues the task (acks_late + reject_on_worker_lost).
    wait_for(lambda: "WorkerLostError" in worker.log() or "Worker exited prematurely" in worker.log(), timeout=20)
    wait_for(lambda: len(re.findall(r"Task delivery\.deliver_batch\[[^\]]+\] received", worker.log())) >= 2, timeout=20)
    recover(notification_id)
    assert ConsoleMessage.objects.filter(notification_id=notification_id).count() == 1
    (delivery,) = deliveries(notification_id)
    assert delivery.attempts == 2


def test_whole_worker_killed_mid_send_is_recovered_and_sent_exactly_once(api, shards, workers):
    notification_id, _ = kill_mid_send(api, shards, workers, whole_worker=True)
    workers(channel_queues("email"))
    recover(notification_id)
    assert ConsoleMessage.objects.filter(notification_id=notification_id).count() == 1


def test_critical_is_consumed_before_a_backlog_of_low_priority(api, shards):
    from tests.support.processes import start_worker as start

    users = [user_on(shards[i % 2]) for i in range(30)]
    for user in users:
        make_recipient(user)
    promo = {"headline": "Sale", "offer": "20% off"}
    low = [send(api, user, type="promotion", channels=["email"], priority="low", data=promo) for user in users]
    critical = send(api, users[0], type="security_alert", channels=["email"], priority="critical", data={"event": "x"})

    import tempfile
    from pathlib import Path

    worker = start(Path(tempfile.mkdtemp()), channel_queues("email"), concurrency=1)
    try:
        wait_for(
            lambda: ConsoleMessage.objects.filter(notification_id__in=[*low, critical]).count() == 31,
            timeout=60,
            message="backlog drained",
        )
    finally:
        worker.stop()
    order = list(
        ConsoleMessage.objects.filter(notification_id__in=[*low, critical]).order_by("pk").values_list("notification_id", flat=True)
    )
    assert str(order[0]) == critical
