"""Claiming, sending and recording outcomes (our own logic; the provider is scripted)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from delivery import retry
from delivery.models import ConsoleMessage, Delivery
from delivery.services.devices import register_device
from delivery.services.dispatch import claim, deliver_batch
from delivery.services.replay import requeue
from tests.support.factories import make_delivery, reload, user_on

pytestmark = pytest.mark.django_db(databases="__all__")

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
    assert requeue([delivery.id]) == 1
    requeued = reload(delivery)
    assert (requeued.status, requeued.attempts, requeued.reason) == ("queued", 0, "")
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
    assert len(writes) == 4  # claim (which marks them handed over), sent, failed, retrying: not one per delivery
    sent_to = {call.delivery_id for call in scripted.calls[0][0::3]}
    for delivery in deliveries:
        row = reload(delivery)
        if delivery.id in sent_to:
            assert row.provider_message_id == f"scripted-{delivery.id}"
        assert row.lease_token is None
    retrying = {reload(d).next_attempt_at for d in deliveries if reload(d).status == "retrying"}
    assert len(retrying) == 1  # the batch is retried together


def test_an_outcome_recorded_clears_the_handoff_marker(shards, scripted):
    scripted.script = ["temporary"]
    delivery = make_delivery(shards[0])
    deliver_batch([delivery.id])
    retried = reload(delivery)
    assert (retried.status, retried.handed_at, retried.possibly_duplicated) == ("retrying", None, False)
    Delivery.objects.using(shards[0]).filter(id=delivery.id).update(next_attempt_at=timezone.now())
    deliver_batch([delivery.id])
    assert (reload(delivery).status, reload(delivery).handed_at, reload(delivery).possibly_duplicated) == ("sent", None, False)


# --- doorbells: one drain task per (shard, channel, priority), claiming batches ---------------


def waiting_drains(queue: str) -> int:
    from config.redis import get_redis

    return get_redis().llen(queue)


def test_one_waiting_drain_task_per_doorbell_however_many_rows(shards):
    from delivery.services.publishing import publish_deliveries

    rows = [make_delivery(shards[0]) for _ in range(3)]
    for row in rows:  # three single sends, one after another
        publish_deliveries(shards[0], [(row.id, "email", "normal")])
    assert waiting_drains("email.normal") == 1
    publish_deliveries(shards[1], [(make_delivery(shards[1]).id, "email", "normal")])
    publish_deliveries(shards[0], [(make_delivery(shards[0], channel="sms").id, "sms", "normal")])
    assert (waiting_drains("email.normal"), waiting_drains("sms.normal")) == (2, 1)


def test_a_drain_sends_its_queue_oldest_first_in_batches_until_it_is_empty(shards, scripted, settings):
    from delivery.services.dispatch import drain

    settings.DELIVERY_BATCH_SIZE = {**settings.DELIVERY_BATCH_SIZE, "email": 3}
    old = timezone.now() - timedelta(minutes=5)
    oldest = [make_delivery(shards[0], published_at=old + timedelta(seconds=i)) for i in range(3)]
    newest = [make_delivery(shards[0]) for _ in range(2)]
    other_queue = make_delivery(shards[0], priority="low")
    report = drain(shards[0], "email", "normal")
    assert (report.claimed, dict(report.outcomes)) == (5, {"sent": 5})
    assert [len(call) for call in scripted.calls] == [3, 2]
    assert {m.delivery_id for m in scripted.calls[0]} == {d.id for d in oldest}
    assert {reload(d).status for d in newest} == {"sent"} and reload(other_queue).status == "queued"
    assert waiting_drains("email.normal") == 1  # the full first batch asked one helper to share the work


def test_a_drain_that_runs_out_of_time_rings_for_itself(shards, scripted, settings):
    from delivery.services.dispatch import drain

    settings.DELIVERY_BATCH_SIZE = {**settings.DELIVERY_BATCH_SIZE, "email": 2}
    settings.DRAIN_MAX_SECONDS = 0
    for _ in range(3):
        make_delivery(shards[0])
    assert drain(shards[0], "email", "normal").claimed == 2  # one batch, then its time was up
    assert waiting_drains("email.normal") == 2  # the helper for the full batch, and itself again


def test_a_row_committed_after_a_drain_started_rings_again(shards, scripted):
    from delivery.services.dispatch import drain
    from delivery.services.publishing import publish_deliveries

    first = make_delivery(shards[0])
    publish_deliveries(shards[0], [(first.id, "email", "normal")])
    assert waiting_drains("email.normal") == 1
    drain(shards[0], "email", "normal")  # the worker took the task (answered the bell) and sent
    late = make_delivery(shards[0])
    assert publish_deliveries(shards[0], [(late.id, "email", "normal")]) == 1
    assert waiting_drains("email.normal") == 2


def test_a_provider_refusing_the_whole_batch_permanently_fails_it_with_its_reason(shards, scripted):
    deliveries = [make_delivery(shards[0]) for _ in range(3)]
    scripted.script = ["reject_batch"]
    report = deliver_batch([d.id for d in deliveries])
    assert dict(report.outcomes) == {"failed": 3}
    for delivery in deliveries:
        row = reload(delivery)
        assert (row.status, row.reason, row.last_error) == ("failed", "sender_not_verified", "sender domain not verified")


def test_sends_arriving_while_a_drain_runs_publish_nothing_and_join_its_next_batch(shards, scripted):
    from delivery.services.dispatch import drain
    from delivery.services.publishing import publish_deliveries

    first = make_delivery(shards[0])
    assert publish_deliveries(shards[0], [(first.id, "email", "normal")]) == 1
    late: list = []

    def a_concurrent_send():
        row = make_delivery(shards[0])
        late.append(row)
        late.append(publish_deliveries(shards[0], [(row.id, "email", "normal")]))

    scripted.during_send = [a_concurrent_send]
    report = drain(shards[0], "email", "normal")
    assert late[1] == 0  # the bell was held: no second task
    assert report.claimed == 2 and [len(call) for call in scripted.calls] == [1, 1]
    assert reload(late[0]).status == "sent"


def test_a_push_reaches_the_devices_that_work_and_retires_the_dead_tokens(shards, scripted):
    from delivery.models import Device

    delivery = make_delivery(shards[0], channel="push")
    register_device(delivery.user_id, platform="android", token="tok-gone")
    register_device(delivery.user_id, platform="ios", token="tok-live")
    scripted.script = ["targets"]
    assert dict(deliver_batch([delivery.id]).outcomes) == {"sent": 1}
    assert reload(delivery).provider_message_id == "msg-tok-live"
    devices = {d.token: (d.active, d.deactivated_reason) for d in Device.objects.using(shards[0]).filter(user_id=delivery.user_id)}
    assert devices == {"tok-gone": (False, "unregistered"), "tok-live": (True, "")}


def test_when_every_target_fails_the_message_fails_with_their_reason(shards, scripted):
    delivery = make_delivery(shards[0], channel="push")
    register_device(delivery.user_id, platform="android", token="tok-only-gone")
    scripted.script = ["targets"]
    deliver_batch([delivery.id])
    assert (reload(delivery).status, reload(delivery).reason) == ("failed", "unregistered")


def test_the_next_provider_takes_over_while_the_first_is_unavailable(shards, scripted, settings):
    from delivery.providers import reset_providers

    settings.NOTIFY_PROVIDERS = {**settings.NOTIFY_PROVIDERS, "email": ["tests.support.providers.Unavailable", "console"]}
    reset_providers()
    delivery = make_delivery(shards[0])
    deliver_batch([delivery.id])
    assert (reload(delivery).status, reload(delivery).provider) == ("sent", "console")
    assert ConsoleMessage.objects.filter(delivery_id=delivery.id).count() == 1


def test_a_configured_provider_that_cannot_work_is_reported(settings):
    from delivery.providers import check_configuration

    settings.NOTIFY_PROVIDERS = {**settings.NOTIFY_PROVIDERS, "sms": ["no.such.Provider"]}
    assert check_configuration() == ["sms provider 'no.such.Provider': cannot be loaded (No module named 'no')"]
