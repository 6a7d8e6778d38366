"""Dead letters and fallbacks end to end with a real worker (one, shared by the module's
tests: starting a worker costs more than either test).

Retries run out while the provider is down, the deliveries are dead-lettered, and a replay
(by the command, and by the admin's action) gets them sent once the provider is back. A push
that finds no device is sent by email instead, published at once."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from config.queues import channel_queues
from config.redis import get_redis
from config.sharding import shard_for_id
from delivery import retry
from delivery.models import ConsoleMessage, Delivery
from delivery.services.sweep import sweep_shard
from notifications.models import NotificationType
from tests.support.admin import page_text
from tests.support.factories import make_recipient, send_body, user_on
from tests.support.processes import start_worker, wait_for

pytestmark = [pytest.mark.django_db(databases="__all__", transaction=True), pytest.mark.timeout(120)]

DOWN = "test:provider-down"  # while it exists, tests.support.providers.RedisSwitched answers 503


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    """Email and push queues; email through a provider the tests switch off in Redis."""
    process = start_worker(
        tmp_path_factory.mktemp("worker"),
        [*channel_queues("email"), *channel_queues("push")],
        EMAIL_PROVIDER="tests.support.providers.RedisSwitched",
        CIRCUIT_FAILURE_THRESHOLD="1000",  # the circuit would defer the later attempts, not fail them
    )
    yield process
    process.stop()


def email_of(notification_id: str) -> Delivery:
    return Delivery.objects.using(shard_for_id(notification_id)).get(notification_id=notification_id)


def fast_forward_retries(aliases) -> None:
    """Make every waiting retry due now and let the sweep publish it (the backoff itself is
    pinned by test_retry_policy; here only the path to the dead letter matters)."""
    for alias in aliases:
        Delivery.objects.using(alias).filter(status="retrying").update(next_attempt_at=timezone.now())
        sweep_shard(alias)


def test_exhausted_retries_dead_letter_then_replay_by_command_and_admin_sends(api, shards, staff, worker):
    get_redis().set(DOWN, "1")
    ids = []
    for alias in shards:
        user = user_on(alias)
        make_recipient(user)
        response = api.post("/api/v1/notifications", send_body(user, channels=["email"]), format="json")
        assert response.status_code == 202
        ids.append(response.json()["id"])

    def all_dead() -> bool:
        rows = [email_of(i) for i in ids]
        if all(r.status == "dead_lettered" for r in rows):
            return True
        fast_forward_retries(shards)
        return False

    wait_for(all_dead, timeout=40, interval=0.1, message="both emails dead-lettered")
    for notification_id in ids:
        row = email_of(notification_id)
        assert (row.reason, row.attempts) == ("retries_exhausted", retry.max_attempts("email"))
        assert "503" in row.last_error and row.provider == "switched"
    assert not ConsoleMessage.objects.filter(notification_id__in=ids).exists()

    get_redis().delete(DOWN)  # the provider is back
    by_command, by_admin = (email_of(i) for i in ids)
    out = io.StringIO()
    call_command("dlq", "replay", str(by_command.id), stdout=out)
    assert "replayed 1 of 1" in out.getvalue()
    response = staff.post(
        "/admin/delivery/deadletter/",
        {"action": "replay_selected", "_selected_action": [str(by_admin.id)]},
        follow=True,
    )
    assert "1 dead letters queued to be sent again" in page_text(response)

    # Published at once: sent without any sweep running.
    wait_for(lambda: [email_of(i).status for i in ids] == ["sent", "sent"], timeout=20, message="both replays sent")
    for notification_id in ids:
        assert ConsoleMessage.objects.filter(notification_id=notification_id).count() == 1
        assert email_of(notification_id).attempts == 1  # a replay starts its retry policy over
        body = api.get(f"/api/v1/notifications/{notification_id}").json()
        assert body["status"] == "sent"


def test_push_without_devices_is_sent_by_email_instead(api, shards, worker):
    notification_type = NotificationType.objects.get(key="order_shipped")
    notification_type.default_channels = ["push"]
    notification_type.fallback_channels = ["push", "email"]
    notification_type.save()
    user = user_on(shards[1])
    make_recipient(user, email="fallback@example.com")
    response = api.post("/api/v1/notifications", send_body(user), format="json")
    assert response.status_code == 202
    notification_id = response.json()["id"]

    def channels() -> dict[str, dict]:
        body = api.get(f"/api/v1/notifications/{notification_id}").json()
        return {c["channel"]: c for c in body["channels"]}

    # No sweep runs here: the fallback is published when it is activated.
    wait_for(lambda: channels()["email"]["status"] == "sent", timeout=30, message="the fallback email sent")
    shown = channels()
    assert (shown["push"]["status"], shown["push"]["reason"], shown["push"]["fallback_to"]) == (
        "skipped", "no_devices", "email"
    )  # fmt: skip
    assert shown["email"]["fallback_of"] == "push"
    assert api.get(f"/api/v1/notifications/{notification_id}").json()["status"] == "sent"
    (message,) = ConsoleMessage.objects.filter(notification_id=notification_id)
    assert (message.channel, message.address) == ("email", "fallback@example.com")
