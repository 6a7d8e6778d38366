"""The outbox sweep publishes exactly the deliveries that are due and not on their way."""

import base64
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from config.redis import get_redis
from delivery.models import Delivery
from delivery.services.sweep import sweep
from tests.delivery.test_dispatch import make_delivery, reload

pytestmark = pytest.mark.django_db(databases="__all__")


def published_ids(queue: str) -> list[str]:
    """Delivery ids in the tasks waiting on a broker queue (the broker is this Redis)."""
    ids = []
    for raw in get_redis().lrange(queue, 0, -1):
        message = json.loads(raw)
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        ids.extend(args[0])
    return ids


@pytest.fixture
def run_sweep(run_on_commit):
    def run():
        with run_on_commit():
            return sweep()

    return run


def test_unpublished_deliveries_are_published(shards, run_sweep):
    delivery = make_delivery(shards[0], published_at=None, republish_at=timezone.now())  # as a failed publish leaves it
    report = run_sweep()
    assert report.republished[shards[0]] == 1
    assert published_ids("email.normal") == [str(delivery.id)]
    swept = reload(delivery)
    assert swept.published_at is not None and swept.republish_at > timezone.now()
    assert run_sweep().total == 0  # published now: left alone until its new deadline


def test_expired_leases_are_handed_out_again(shards, run_sweep):
    now = timezone.now()
    expired = make_delivery(shards[1], status="sending", lease_expires_at=now - timedelta(seconds=1), attempts=1)
    held = make_delivery(shards[1], status="sending", lease_expires_at=now + timedelta(minutes=1), attempts=1)
    run_sweep()
    assert published_ids("email.normal") == [str(expired.id)]
    assert (reload(expired).status, reload(expired).lease_expires_at) == ("queued", None)
    assert reload(held).status == "sending"


def test_a_delivery_that_kills_every_worker_ends_dead_lettered(shards, run_sweep):
    from delivery import retry

    now = timezone.now()
    poison = make_delivery(
        shards[0], status="sending", lease_expires_at=now - timedelta(seconds=1), attempts=retry.max_attempts("email")
    )
    report = run_sweep()
    assert report.total == 0 and report.dead_lettered[shards[0]] == 1
    dead = reload(poison)
    assert (dead.status, dead.reason, dead.lease_token) == ("dead_lettered", "lease_expired", None)
    assert published_ids("email.normal") == []


def test_due_retries_and_scheduled_sends_are_published(shards, run_sweep):
    now = timezone.now()
    due_retry = make_delivery(shards[0], status="retrying", next_attempt_at=now - timedelta(seconds=1))
    due_scheduled = make_delivery(shards[1], status="scheduled", next_attempt_at=now - timedelta(seconds=1))
    not_yet = make_delivery(shards[0], status="retrying", next_attempt_at=now + timedelta(minutes=5))
    future = make_delivery(shards[1], status="scheduled", next_attempt_at=now + timedelta(days=1))
    report = run_sweep()
    assert report.total == 2
    assert sorted(published_ids("email.normal")) == sorted([str(due_retry.id), str(due_scheduled.id)])
    assert reload(not_yet).status == "retrying" and reload(future).status == "scheduled"


def test_queued_deliveries_nobody_picked_up_are_published_again(shards, run_sweep):
    now = timezone.now()
    waiting = make_delivery(shards[0])  # just published: deadline STUCK_QUEUED_AFTER_SECONDS ahead
    stuck = make_delivery(shards[0], republish_at=now - timedelta(seconds=1))
    run_sweep()
    assert published_ids("email.normal") == [str(stuck.id)]
    assert reload(waiting).republish_at == waiting.republish_at


def test_republishing_backs_off_as_a_delivery_waits_longer(shards, run_sweep, settings):
    now = timezone.now()
    base = settings.STUCK_QUEUED_AFTER_SECONDS
    young = make_delivery(shards[0], republish_at=now - timedelta(seconds=1), created_at=now - timedelta(seconds=base / 2))
    old = make_delivery(shards[0], republish_at=now - timedelta(seconds=1), created_at=now - timedelta(seconds=3 * base))
    ancient = make_delivery(shards[0], republish_at=now - timedelta(seconds=1), created_at=now - timedelta(days=3))
    run_sweep()

    def spacing(delivery):
        return round((reload(delivery).republish_at - now).total_seconds() / base)

    assert (spacing(young), spacing(old)) == (1, 4)  # as long again as it has waited, doubling
    assert spacing(ancient) == round(settings.REPUBLISH_MAX_SPACING_SECONDS / base)  # capped


def test_finished_deliveries_are_never_touched(shards, run_sweep):
    old = timezone.now() - timedelta(days=1)
    for status in ("sent", "failed", "dead_lettered", "skipped"):
        make_delivery(shards[0], status=status, published_at=None, lease_expires_at=old, next_attempt_at=old, republish_at=old)
    assert run_sweep().total == 0


def test_the_sweep_respects_its_batch_limit(shards, run_sweep, settings):
    settings.SWEEP_BATCH_LIMIT = 3
    for _ in range(5):
        make_delivery(shards[0], published_at=None, republish_at=timezone.now())
    assert run_sweep().republished[shards[0]] == 3
    assert run_sweep().republished[shards[0]] == 2
    assert Delivery.objects.using(shards[0]).filter(published_at__isnull=True).count() == 0


def test_after_a_memory_broker_restart_every_queued_delivery_is_due(shards, run_sweep):
    from delivery.services.sweep import republish_all_queued

    queued = [make_delivery(alias) for alias in shards]
    assert run_sweep().total == 0
    assert republish_all_queued() == 2
    assert run_sweep().total == 2
    assert {reload(d).status for d in queued} == {"queued"}
