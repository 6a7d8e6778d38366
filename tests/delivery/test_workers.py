"""Real Celery workers (and beat) on the test databases and Redis: delivery end to end,
durability when the broker is down or a worker is killed, and strict priority order."""

from __future__ import annotations

import os
import signal
import time

import pytest

from config.queues import all_queues, channel_queues
from config.sharding import shard_for_id
from delivery.models import ConsoleMessage, Delivery
from delivery.services.sweep import sweep_shard
from tests.support.factories import make_recipient, send_body, user_on
from tests.support.processes import ManagedProcess, publishing_to, service_env, start_beat, start_worker, wait_for

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
    # In-app goes through the in-app provider (the user has no bell open: kept in the inbox).
    assert "inapp" not in recorded
    assert {d.channel: d.provider for d in deliveries(notification_id)}["inapp"] == "inapp"


def broker_unreachable():
    """Point this process's Celery publisher at a port nothing listens on."""
    return publishing_to("redis://127.0.0.1:1/0")


def test_broker_down_at_publish_time_then_the_sweep_delivers(api, shards, workers, tmp_path):
    user = user_on(shards[0])
    make_recipient(user)
    with broker_unreachable():
        notification_id = send(api, user, channels=["email", "inapp"])
    assert all(d.published_at is None and d.status == "queued" for d in deliveries(notification_id))

    workers([*channel_queues("email"), *channel_queues("inapp"), "maintenance"])
    beat = start_beat(tmp_path, SWEEP_INTERVAL_SECONDS="0.5")
    try:
        wait_for(lambda: set(statuses(notification_id).values()) == {"sent"}, timeout=40, message="sent after sweep")
    finally:
        beat.stop()
    assert ConsoleMessage.objects.filter(notification_id=notification_id).count() == 1  # email (in-app: its own provider)


SLOW = {"CONSOLE_PROVIDER_DELAY_SECONDS": "2", "DELIVERY_LEASE_SECONDS": "3", "PROVIDER_TIMEOUT_SECONDS": "1"}


def kill_mid_send(api, shards, workers, *, whole_worker: bool, **env):
    user = user_on(shards[1])
    make_recipient(user)
    worker = workers(channel_queues("email"), **{**SLOW, **env})
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


def recover(api, notification_id: str) -> None:
    """Once the lease has expired, the sweep hands the delivery out again; a later send on
    the same queue, once sent, proves every earlier task was handled (so a wrong second send
    would have happened)."""
    (delivery,) = deliveries(notification_id)
    wait_for(lambda: time.time() > delivery.lease_expires_at.timestamp() + 0.2, timeout=10, message="lease expired")
    sweep_shard(shard_for_id(notification_id))
    wait_for(lambda: statuses(notification_id) == {"email": "sent"}, timeout=30, message="sent after recovery")
    barrier = send(api, delivery.user_id, channels=["email"])
    wait_for(lambda: statuses(barrier) == {"email": "sent"}, timeout=30, message="a later send on the same queue")


def test_worker_child_killed_mid_send_is_sent_exactly_once(api, shards, workers):
    notification_id, worker = kill_mid_send(api, shards, workers, whole_worker=False)
    recover(api, notification_id)
    assert ConsoleMessage.objects.filter(notification_id=notification_id).count() == 1
    (delivery,) = deliveries(notification_id)
    assert delivery.attempts == 2
    # It was killed inside the provider call: the status says it may have gone out twice.
    assert delivery.possibly_duplicated is True
    assert api.get(f"{URL}/{notification_id}").json()["channels"][0]["possibly_duplicated"] is True
    assert worker.proc.poll() is None  # the pool replaced its child; the worker lives on


def test_whole_worker_killed_mid_send_is_recovered_and_sent_exactly_once(api, shards, workers):
    notification_id, _ = kill_mid_send(api, shards, workers, whole_worker=True)
    workers(channel_queues("email"))
    recover(api, notification_id)
    assert ConsoleMessage.objects.filter(notification_id=notification_id).count() == 1


@pytest.mark.parametrize("whole_worker", [False, True], ids=["child-killed", "worker-killed-and-restarted"])
def test_a_killed_workers_claims_are_taken_back_when_a_new_worker_process_starts(api, shards, workers, whole_worker):
    """Not after the lease (60 s here): the pool's replacement child, or the restarted worker,
    ends the leases of dead processes on its host as it starts."""
    long_lease = {"DELIVERY_LEASE_SECONDS": "60"}
    notification_id, _ = kill_mid_send(api, shards, workers, whole_worker=whole_worker, **long_lease)
    if whole_worker:
        workers(channel_queues("email"), **long_lease)
    (claimed,) = deliveries(notification_id)
    wait_for(lambda: deliveries(notification_id)[0].lease_expires_at < claimed.lease_expires_at, timeout=30,
             message="the lease taken back")  # fmt: skip
    sweep_shard(shard_for_id(notification_id))
    wait_for(lambda: statuses(notification_id) == {"email": "sent"}, timeout=20, message="sent again")
    (delivery,) = deliveries(notification_id)
    assert delivery.possibly_duplicated is True and delivery.attempts == 2
    assert ConsoleMessage.objects.filter(notification_id=notification_id).count() == 1


def test_a_delivery_requeued_from_the_admin_is_sent_within_seconds(api, admin_client, shards, workers, tmp_path):
    """Replay publishes at once; a real worker sends it (beat runs, but nothing waits for it)."""
    user = user_on(shards[0])
    make_recipient(user)
    failing = workers(channel_queues("email"), EMAIL_PROVIDER="tests.support.providers.AlwaysRejects")
    notification_id = send(api, user, channels=["email"])
    wait_for(lambda: statuses(notification_id) == {"email": "failed"}, timeout=30, message="failed by the provider")
    failing.stop()
    workers(channel_queues("email"))
    beat = start_beat(tmp_path)
    try:
        (delivery,) = deliveries(notification_id)
        response = admin_client.post(
            "/admin/delivery/delivery/", {"action": "requeue_selected", "_selected_action": [str(delivery.id)]}, follow=True
        )
        assert "1 deliveries queued to be sent again" in response.content.decode()
        wait_for(lambda: statuses(notification_id) == {"email": "sent"}, timeout=10, message="sent after the replay")
    finally:
        beat.stop()
    assert ConsoleMessage.objects.filter(notification_id=notification_id).count() == 1


def test_a_shard_that_is_down_does_not_stop_the_sweep_of_the_others(api, shards, workers, tmp_path):
    """The worker and beat see shard_1 unreachable; shard_0's unpublished delivery still goes."""
    user = user_on(shards[0])
    make_recipient(user)
    with broker_unreachable():
        notification_id = send(api, user, channels=["email"])
    env = service_env()
    urls = env["SHARD_DATABASE_URLS"].split(",")
    urls[1] = "postgres://postgres@127.0.0.1:1/unreachable"
    broken = {"SHARD_DATABASE_URLS": ",".join(urls), "SWEEP_INTERVAL_SECONDS": "0.5"}
    workers([*channel_queues("email"), "maintenance"], **broken)
    beat = start_beat(tmp_path, **broken)
    try:
        wait_for(lambda: statuses(notification_id) == {"email": "sent"}, timeout=40, message="shard_0 swept")
    finally:
        beat.stop()


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
