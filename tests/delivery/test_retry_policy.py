"""The retry schedule of seed 004, pinned: attempts in all, each delay within its jitter
bounds, the dead letter at the end; only temporary errors retry; Retry-After is a floor."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from delivery import retry
from delivery.models import Delivery
from delivery.services.devices import register_device
from delivery.services.dispatch import deliver_batch
from tests.support.factories import make_delivery, reload

pytestmark = pytest.mark.django_db(databases="__all__")

# Seed 004, Part 10, verbatim: retries after the first attempt, first delay, multiplier, cap.
SEED = {
    "push": (3, 1.0, 2, 30.0),
    "email": (5, 10.0, 3, 3600.0),
    "sms": (3, 30.0, 2, 300.0),
}
JITTER = 0.25
# The delay before retry 1, 2, ... (without jitter), worked out by hand from the seed.
SCHEDULE = {
    "push": [1, 2, 4],
    "email": [10, 30, 90, 270, 810],
    "sms": [30, 60, 120],
}


def test_settings_hold_the_seed_policies():
    for channel, (retries, initial, multiplier, cap) in SEED.items():
        policy = settings.RETRY_POLICIES[channel]
        assert (policy["max_retries"], policy["initial_delay"], policy["multiplier"], policy["max_delay"]) == (
            retries, initial, multiplier, cap
        )  # fmt: skip
        assert policy["jitter"] == JITTER
        # "3 tries" are three retries after the first attempt: four attempts in all.
        assert retry.max_attempts(channel) == retries + 1


def test_the_cap_holds_beyond_the_seeds_retries():
    middle = lambda: 0.5  # noqa: E731  (no jitter)
    assert retry.backoff_seconds("push", 6, middle) == 30
    assert retry.backoff_seconds("email", 9, middle) == 3600
    assert retry.backoff_seconds("sms", 5, middle) == 300
    assert retry.backoff_seconds("push", 1, lambda: 0.0) == 0.75
    assert retry.backoff_seconds("push", 1, lambda: 1.0) == 1.25


@pytest.mark.parametrize("channel", ["push", "email", "sms"])
@override_settings(CIRCUIT_FAILURE_THRESHOLD=100)  # the circuit would defer email's 6th attempt
def test_a_failing_delivery_follows_its_channels_schedule_to_the_dead_letter(shards, scripted, channel):
    scripted.script = ["temporary"] * 10
    alias = shards[0]
    delivery = make_delivery(alias, channel=channel, address="+14155550100" if channel == "sms" else "a@example.com")
    if channel == "push":
        register_device(delivery.user_id, platform="android", token="tok-retry")
    waits = []
    for attempt in range(1, retry.max_attempts(channel) + 1):
        before = timezone.now()
        deliver_batch([delivery.id])
        after = timezone.now()
        row = reload(delivery)
        assert row.attempts == attempt
        if row.status == "dead_lettered":
            break
        assert row.status == "retrying"
        waits.append(((row.next_attempt_at - after).total_seconds(), (row.next_attempt_at - before).total_seconds()))
        Delivery.objects.using(alias).filter(id=delivery.id).update(next_attempt_at=timezone.now())
    assert len(waits) == len(SCHEDULE[channel])
    for (low, high), base in zip(waits, SCHEDULE[channel], strict=True):
        assert base * (1 - JITTER) - 0.01 <= high and low <= base * (1 + JITTER) + 0.01, (low, high, base)
    dead = reload(delivery)
    assert (dead.status, dead.reason, dead.attempts) == ("dead_lettered", "retries_exhausted", SEED[channel][0] + 1)
    assert "503" in dead.last_error  # the last error is kept for the operator
    assert len(scripted.calls) == SEED[channel][0] + 1


def test_retry_after_from_the_provider_is_the_floor(shards, scripted):
    scripted.script = ["retry_after=120"]
    delivery = make_delivery(shards[1])
    before = timezone.now()
    deliver_batch([delivery.id])
    row = reload(delivery)
    assert row.status == "retrying"
    assert 119.9 <= (row.next_attempt_at - before).total_seconds() <= 121  # email's own 10 s +-25% is shorter


def test_a_short_retry_after_does_not_shorten_the_backoff(shards, scripted):
    scripted.script = ["retry_after=0.5"]
    delivery = make_delivery(shards[1])
    before = timezone.now()
    deliver_batch([delivery.id])
    wait = (reload(delivery).next_attempt_at - before).total_seconds()
    assert 7.5 <= wait <= 12.6


@pytest.mark.parametrize(
    ("action", "status", "reason"),
    [
        ("permanent", "failed", "invalid_address"),
        ("reject_batch", "failed", "sender_not_verified"),
        ("crash", "dead_lettered", "unexpected_error"),
    ],
)
def test_only_temporary_errors_retry(shards, scripted, action, status, reason):
    scripted.script = [action]
    delivery = make_delivery(shards[0])
    deliver_batch([delivery.id])
    row = reload(delivery)
    assert (row.status, row.reason, row.attempts, row.next_attempt_at) == (status, reason, 1, None)
    assert row.last_error


def test_per_message_temporary_errors_retry_too(shards, scripted):
    scripted.script = ["temporary_each"]
    delivery = make_delivery(shards[0])
    deliver_batch([delivery.id])
    row = reload(delivery)
    assert row.status == "retrying" and row.next_attempt_at > timezone.now() + timedelta(seconds=7)
