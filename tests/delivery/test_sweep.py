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
    delivery = make_delivery(shards[0], published_at=None)
    report = run_sweep()
    assert report.republished[shards[0]] == 1
    assert published_ids("email.normal") == [str(delivery.id)]
    assert reload(delivery).published_at is not None
    assert run_sweep().total == 0  # published now: left alone


def test_expired_leases_are_handed_out_again(shards, run_sweep):
    now = timezone.now()
    expired = make_delivery(shards[1], status="sending", lease_expires_at=now - timedelta(seconds=1), attempts=1)
    held = make_delivery(shards[1], status="sending", lease_expires_at=now + timedelta(minutes=1), attempts=1)
    run_sweep()
    assert published_ids("email.normal") == [str(expired.id)]
    assert (reload(expired).status, reload(expired).lease_expires_at) == ("queued", None)
    assert reload(held).status == "sending"


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


def test_queued_deliveries_the_broker_lost_are_published_again(shards, run_sweep, settings):
    now = timezone.now()
    recent = make_delivery(shards[0], published_at=now - timedelta(seconds=5))
    lost = make_delivery(shards[0], published_at=now - timedelta(seconds=settings.STUCK_QUEUED_AFTER_SECONDS + 1))
    run_sweep()  # email.normal is empty in the broker: the old message is gone
    assert published_ids("email.normal") == [str(lost.id)]
    assert reload(recent).published_at == recent.published_at


def test_a_long_backlog_is_not_mistaken_for_lost_messages(shards, run_sweep, settings):
    old = timezone.now() - timedelta(seconds=settings.STUCK_QUEUED_AFTER_SECONDS + 1)
    waiting = make_delivery(shards[0], published_at=old)
    from delivery.services.publishing import publish_deliveries

    other = make_delivery(shards[1])
    publish_deliveries(shards[1], [(other.id, "email", "normal")])  # the queue is not empty
    assert run_sweep().total == 0
    assert reload(waiting).published_at == waiting.published_at
    lost_push = make_delivery(shards[0], channel="push", published_at=old)
    run_sweep()  # push.normal is empty: that one is lost and goes out again
    assert published_ids("push.normal") == [str(lost_push.id)]


def test_finished_deliveries_are_never_touched(shards, run_sweep):
    old = timezone.now() - timedelta(days=1)
    for status in ("sent", "failed", "dead_lettered", "skipped"):
        make_delivery(shards[0], status=status, published_at=None, lease_expires_at=old, next_attempt_at=old)
    assert run_sweep().total == 0


def test_the_sweep_respects_its_batch_limit(shards, run_sweep, settings):
    settings.SWEEP_BATCH_LIMIT = 3
    for _ in range(5):
        make_delivery(shards[0], published_at=None)
    assert run_sweep().republished[shards[0]] == 3
    assert run_sweep().republished[shards[0]] == 2
    assert Delivery.objects.using(shards[0]).filter(published_at__isnull=True).count() == 0
