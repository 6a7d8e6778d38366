"""Claiming, sending and recording outcomes (our own logic; the provider is scripted)."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from config.sharding import new_id_for_user
from delivery import retry
from delivery.models import ConsoleMessage, Delivery, DeliveryStatus
from delivery.services.devices import register_device
from delivery.services.dispatch import claim, deliver_batch
from config.bulk import insert_rows
from delivery.services.records import PlannedDelivery, delivery_rows
from delivery.services.replay import requeue
from tests.support.factories import user_on
from tests.support.providers import ScriptedProvider

pytestmark = pytest.mark.django_db(databases="__all__")

SCRIPTED = "tests.support.providers.ScriptedProvider"


@pytest.fixture
def scripted():
    ScriptedProvider.reset()
    with override_settings(NOTIFY_PROVIDERS={c: SCRIPTED for c in ("email", "sms", "push", "inapp")}):
        from delivery.providers import reset_providers

        reset_providers()
        yield ScriptedProvider
    ScriptedProvider.reset()


def make_delivery(alias: str, channel: str = "email", user_id: str | None = None, **fields) -> Delivery:
    user_id = user_id or user_on(alias)
    planned = PlannedDelivery(
        id=new_id_for_user(user_id),
        notification_id=new_id_for_user(user_id),
        user_id=user_id,
        channel=channel,
        priority="normal",
        status=fields.pop("status", DeliveryStatus.QUEUED),
        address="x@example.com" if channel == "email" else "",
        payload={"subject": "s", "text": "t"},
        next_attempt_at=fields.pop("next_attempt_at", None),
    )
    insert_rows(alias, [delivery_rows([planned], timezone.now())])
    if fields:
        Delivery.objects.using(alias).filter(id=planned.id).update(**fields)
    return Delivery.objects.using(alias).get(id=planned.id)


def reload(delivery: Delivery) -> Delivery:
    return Delivery.objects.using(delivery._state.db).get(id=delivery.id)


def test_console_provider_records_and_marks_sent(shards):
    delivery = make_delivery(shards[0])
    report = deliver_batch([delivery.id])
    assert report.claimed == 1 and report.outcomes == {"sent": 1}
    sent = reload(delivery)
    assert (sent.status, sent.attempts, sent.provider, sent.lease_token) == ("sent", 1, "console", None)
    message = ConsoleMessage.objects.get(delivery_id=delivery.id)
    assert sent.provider_message_id == f"console-{message.pk}"
    assert message.payload == {"subject": "s", "text": "t"}


def test_a_delivery_is_sent_once_however_often_its_task_runs(shards):
    delivery = make_delivery(shards[1])
    deliver_batch([delivery.id])
    again = deliver_batch([delivery.id, delivery.id])
    assert again.claimed == 0
    assert ConsoleMessage.objects.filter(delivery_id=delivery.id).count() == 1


def test_a_held_lease_blocks_a_second_claimer_until_it_expires(shards):
    delivery = make_delivery(shards[0])
    token, rows = claim(shards[0], [delivery.id])
    assert len(rows) == 1
    assert claim(shards[0], [delivery.id])[1] == []

    Delivery.objects.using(shards[0]).filter(id=delivery.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    new_token, rows = claim(shards[0], [delivery.id])
    assert len(rows) == 1 and new_token != token
    assert rows[0].attempts == 2


def test_a_worker_whose_lease_was_taken_over_cannot_overwrite_the_outcome(shards, scripted):
    delivery = make_delivery(shards[0])
    old_token, _ = claim(shards[0], [delivery.id])
    Delivery.objects.using(shards[0]).filter(id=delivery.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    deliver_batch([delivery.id])  # the new owner sends it
    from delivery.services.dispatch import _finish

    _finish(shards[0], old_token, [delivery], status="failed", reason="late", now=timezone.now())
    assert reload(delivery).status == "sent"


def test_temporary_failure_schedules_a_retry_with_backoff(shards, scripted):
    scripted.script = ["temporary"]
    delivery = make_delivery(shards[0], channel="push")
    register_device(delivery.user_id, platform="android", token="tok-1")
    before = timezone.now()
    deliver_batch([delivery.id])
    retried = reload(delivery)
    assert (retried.status, retried.reason, retried.attempts) == ("retrying", "temporary_failure", 1)
    assert "503" in retried.last_error
    wait = (retried.next_attempt_at - before).total_seconds()
    assert 0.75 <= wait <= 1.3  # push: 1 s +-25%
    assert scripted.calls[0][0].device_tokens == ("tok-1",)


def test_retries_end_in_the_dead_letter_state(shards, scripted):
    scripted.script = ["temporary"] * 10
    delivery = make_delivery(shards[1], channel="sms", address="+14155550100")
    for _ in range(retry.max_attempts("sms")):
        Delivery.objects.using(shards[1]).filter(id=delivery.id).update(next_attempt_at=timezone.now())
        deliver_batch([delivery.id])
    dead = reload(delivery)
    assert (dead.status, dead.reason, dead.attempts) == ("dead_lettered", "retries_exhausted", retry.max_attempts("sms"))
    assert len(scripted.calls) == retry.max_attempts("sms")


def test_permanent_failure_fails_without_retry(shards, scripted):
    scripted.script = ["permanent"]
    delivery = make_delivery(shards[0])
    deliver_batch([delivery.id])
    failed = reload(delivery)
    assert (failed.status, failed.reason, failed.last_error) == ("failed", "invalid_address", "address rejected")


@pytest.mark.parametrize("action", ["crash", "drop"])
def test_provider_bugs_dead_letter_visibly(shards, scripted, action):
    scripted.script = [action]
    delivery = make_delivery(shards[0])
    deliver_batch([delivery.id])
    dead = reload(delivery)
    assert (dead.status, dead.reason) == ("dead_lettered", "unexpected_error")
    assert dead.last_error


def test_an_unavailable_provider_is_a_temporary_failure(shards, scripted):
    scripted.available = False
    delivery = make_delivery(shards[0])
    deliver_batch([delivery.id])
    assert (reload(delivery).status, reload(delivery).reason) == ("retrying", "provider_unavailable")
    assert scripted.calls == []


def test_push_without_active_devices_is_skipped(shards):
    delivery = make_delivery(shards[0], channel="push")
    device, _ = register_device(delivery.user_id, platform="ios", token="tok-old")
    device.active = False
    device.save(using=shards[0])
    deliver_batch([delivery.id])
    assert (reload(delivery).status, reload(delivery).reason) == ("skipped", "no_devices")


def test_a_batch_sends_all_its_deliveries_in_one_provider_call(shards, scripted):
    deliveries = [make_delivery(shards[0]) for _ in range(5)]
    report = deliver_batch([d.id for d in deliveries])
    assert report.outcomes == {"sent": 5}
    assert len(scripted.calls) == 1 and len(scripted.calls[0]) == 5


def test_requeue_sends_failed_deliveries_again(shards, scripted):
    scripted.script = ["permanent"]
    delivery = make_delivery(shards[0])
    deliver_batch([delivery.id])
    assert requeue(shards[0], [delivery.id]) == 1
    requeued = reload(delivery)
    assert (requeued.status, requeued.attempts, requeued.published_at) == ("queued", 0, None)
    deliver_batch([delivery.id])
    assert reload(delivery).status == "sent"


def test_backoff_follows_each_channels_policy():
    middle = lambda: 0.5  # noqa: E731  (no jitter)
    assert [retry.backoff_seconds("push", n, middle) for n in (1, 2, 3, 6)] == [1, 2, 4, 30]
    assert [retry.backoff_seconds("email", n, middle) for n in (1, 2, 3, 4, 5, 6)] == [10, 30, 90, 270, 810, 2430]
    assert [retry.backoff_seconds("sms", n, middle) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry.backoff_seconds("email", 9, middle) == 3600
    assert retry.backoff_seconds("push", 1, lambda: 0.0) == 0.75
    assert retry.backoff_seconds("push", 1, lambda: 1.0) == 1.25


def test_a_batch_records_each_outcome_with_a_few_statements(shards, scripted):
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    scripted.script = ["mixed"]
    user = user_on(shards[0])
    deliveries = [make_delivery(shards[0], user_id=user) for _ in range(30)]
    with CaptureQueriesContext(connections[shards[0]]) as queries:
        report = deliver_batch([d.id for d in deliveries])
    assert report.outcomes == {"sent": 10, "failed": 10, "retrying": 10}
    writes = [q for q in queries if q["sql"].startswith("UPDATE")]
    assert len(writes) == 4  # claim, sent, failed, retrying: not one per delivery
    sent_to = {call.delivery_id for call in scripted.calls[0][0::3]}
    for delivery in deliveries:
        row = reload(delivery)
        if delivery.id in sent_to:
            assert row.provider_message_id == f"scripted-{delivery.id}"
        assert row.lease_token is None
    retrying = {reload(d).next_attempt_at for d in deliveries if reload(d).status == "retrying"}
    assert len(retrying) == 1  # the batch is retried together
