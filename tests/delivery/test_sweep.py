"""The outbox sweep publishes exactly the deliveries that are due or lost, and leaves a
backlog that is merely waiting its turn alone."""

import base64
import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from config.queues import delivery_queue
from config.redis import get_redis
from delivery.models import Delivery
from delivery.services.sweep import republish_all_queued, sweep_shard
from tests.support.factories import make_delivery, reload

pytestmark = pytest.mark.django_db(databases="__all__")


def rung(queue: str) -> list[str]:
    """Shards whose drain tasks wait on a broker queue (the broker is this Redis)."""
    shards = []
    for raw in get_redis().lrange(queue, 0, -1):
        if not raw.startswith(b"{"):
            continue  # a stand-in task this test put there
        message = json.loads(raw)
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        shards.append(json.loads(body)[0][0])
    return sorted(shards)


def republished(delivery) -> bool:
    """Handed out again by the sweep: queued, with a fresh publish time."""
    again = reload(delivery)
    return again.status == "queued" and again.published_at is not None and (
        delivery.published_at is None or again.published_at > delivery.published_at
    )


def broker_remembers(alias: str) -> None:
    """The marker the sweep keeps in Redis, as a sweep that ran before would have left it."""
    get_redis().set(f"notify:broker-epoch:{alias}", "earlier")


@pytest.fixture(autouse=True)
def broker_kept_its_data(shards):
    for alias in shards:
        broker_remembers(alias)


@pytest.fixture
def run_sweep(run_on_commit, shards):
    def run(*aliases, limit=None):
        with run_on_commit():
            reports = [sweep_shard(alias, limit=limit) for alias in aliases or shards]
        return sum(r.republished for r in reports)

    return run


def test_unpublished_deliveries_are_published(shards, run_sweep):
    delivery = make_delivery(shards[0], published_at=None, republish_at=timezone.now())  # as a failed publish leaves it
    assert run_sweep() == 1
    assert rung("email.normal") == [shards[0]] and republished(delivery)
    swept = reload(delivery)
    assert swept.published_at is not None and swept.republish_at > timezone.now()
    assert run_sweep() == 0  # its task is waiting in the queue: left alone


def test_expired_leases_are_handed_out_again(shards, run_sweep):
    now = timezone.now()
    expired = make_delivery(shards[1], status="sending", lease_expires_at=now - timedelta(seconds=1), attempts=1)
    held = make_delivery(shards[1], status="sending", lease_expires_at=now + timedelta(minutes=1), attempts=1)
    assert run_sweep() == 1
    assert rung("email.normal") == [shards[1]]
    assert (reload(expired).status, reload(expired).lease_expires_at) == ("queued", None)
    assert reload(held).status == "sending"


def test_a_lease_taken_before_the_database_server_started_is_handed_out_again(shards, run_sweep):
    """A restart cuts every session, so no worker can finish what it claimed before it: the
    sweep takes it back at once rather than when its lease lapses."""
    with connections[shards[1]].cursor() as cursor:
        cursor.execute("SELECT pg_postmaster_start_time()")
        (server_started,) = cursor.fetchone()
    lease = timezone.now() + timedelta(minutes=1)
    orphaned = make_delivery(shards[1], status="sending", lease_expires_at=lease, attempts=1,
                             updated_at=server_started - timedelta(seconds=1), handed_at=server_started)  # fmt: skip
    held = make_delivery(shards[1], status="sending", lease_expires_at=lease, attempts=1)
    assert run_sweep(shards[1]) == 1
    assert rung("email.normal") == [shards[1]]
    taken_back = reload(orphaned)
    assert (taken_back.status, taken_back.lease_expires_at, taken_back.possibly_duplicated) == ("queued", None, True)
    assert reload(held).status == "sending"


def test_a_delivery_that_kills_every_worker_ends_dead_lettered(shards, run_sweep):
    from delivery import retry

    now = timezone.now()
    poison = make_delivery(
        shards[0], status="sending", lease_expires_at=now - timedelta(seconds=1), attempts=retry.max_attempts("email")
    )
    report = sweep_shard(shards[0])
    assert (report.republished, report.dead_lettered) == (0, 1)
    dead = reload(poison)
    assert (dead.status, dead.reason, dead.lease_token) == ("dead_lettered", "lease_expired", None)
    assert rung("email.normal") == []


def test_due_retries_and_scheduled_sends_are_published(shards, run_sweep):
    now = timezone.now()
    due_retry = make_delivery(shards[0], status="retrying", next_attempt_at=now - timedelta(seconds=1))
    due_scheduled = make_delivery(shards[1], status="scheduled", next_attempt_at=now - timedelta(seconds=1))
    not_yet = make_delivery(shards[0], status="retrying", next_attempt_at=now + timedelta(minutes=5))
    future = make_delivery(shards[1], status="scheduled", next_attempt_at=now + timedelta(days=1))
    assert run_sweep() == 2
    assert rung("email.normal") == sorted(shards)
    assert republished(due_retry) and republished(due_scheduled)
    assert reload(not_yet).status == "retrying" and reload(future).status == "scheduled"


def test_a_queued_delivery_whose_queue_is_empty_is_published_again_after_its_grace(shards, run_sweep):
    """Its message is gone (a worker would have claimed it by now): publish it again."""
    now = timezone.now()
    grace = settings.REPUBLISH_GRACE_SECONDS["normal"]
    lost = make_delivery(shards[0], published_at=now - timedelta(seconds=grace + 1))
    fresh = make_delivery(shards[0], published_at=now - timedelta(seconds=grace / 2))
    assert run_sweep() == 1
    assert republished(lost) and rung("email.normal") == [shards[0]]
    assert reload(fresh).published_at == fresh.published_at


def test_critical_is_presumed_lost_sooner_than_low(shards, run_sweep):
    now = timezone.now()
    grace = settings.REPUBLISH_GRACE_SECONDS
    assert grace["critical"] < grace["high"] < grace["normal"] < grace["low"]
    age = timedelta(seconds=(grace["critical"] + grace["high"]) / 2)
    critical = make_delivery(shards[0], priority="critical", published_at=now - age)
    low = make_delivery(shards[0], priority="low", published_at=now - age)
    assert run_sweep() == 1
    assert republished(critical) and rung("email.critical") == [shards[0]]
    assert rung("email.low") == [] and reload(low).published_at == low.published_at


def test_a_backlog_waiting_in_its_queue_is_not_published_again(shards, run_sweep):
    """An hour-old backlog behind slow workers: the queue still holds its tasks, so nothing
    is duplicated however old the rows are (until the backstop)."""
    hour_ago = timezone.now() - timedelta(hours=1)
    backlog = [make_delivery(shards[0], channel="sms", published_at=hour_ago) for _ in range(3)]
    get_redis().rpush(delivery_queue("sms", "normal"), b"a task still waiting")
    assert run_sweep() == 0
    assert {reload(d).published_at for d in backlog} == {hour_ago}


def test_after_the_broker_lost_its_data_every_queued_delivery_is_published_once(shards, run_sweep):
    """Redis restarted empty: the sweep's marker is gone, and so are the queued tasks, even
    where new tasks already refilled the queue."""
    hour_ago = timezone.now() - timedelta(hours=1)
    lost = [make_delivery(alias, published_at=hour_ago) for alias in shards]
    get_redis().delete(*(f"notify:broker-epoch:{alias}" for alias in shards))
    get_redis().rpush(delivery_queue("email", "normal"), b"a task published after the restart")
    assert run_sweep() == 2
    assert all(map(republished, lost)) and rung("email.normal") == sorted(shards)
    assert run_sweep() == 0  # the marker is back: nothing is published twice


def test_the_backstop_republishes_with_growing_spacing(shards, run_sweep):
    now = timezone.now()
    base = settings.STUCK_QUEUED_AFTER_SECONDS
    get_redis().rpush(delivery_queue("email", "normal"), b"a long backlog")
    young = make_delivery(shards[0], republish_at=now - timedelta(seconds=1), created_at=now - timedelta(seconds=base / 2))
    old = make_delivery(shards[0], republish_at=now - timedelta(seconds=1), created_at=now - timedelta(seconds=3 * base))
    ancient = make_delivery(shards[0], republish_at=now - timedelta(seconds=1), created_at=now - timedelta(days=30))
    assert run_sweep() == 3

    def spacing(delivery):
        return round((reload(delivery).republish_at - now).total_seconds() / base)

    assert (spacing(young), spacing(old)) == (1, 4)  # as long again as it has existed, doubling
    assert spacing(ancient) == round(settings.REPUBLISH_MAX_SPACING_SECONDS / base)  # capped


def test_finished_deliveries_are_never_touched(shards, run_sweep):
    old = timezone.now() - timedelta(days=1)
    for status in ("sent", "failed", "dead_lettered", "skipped"):
        make_delivery(shards[0], status=status, published_at=old, lease_expires_at=old, next_attempt_at=old, republish_at=old)
    assert run_sweep() == 0


def test_the_sweep_respects_its_batch_limit(shards, run_sweep):
    for _ in range(5):
        make_delivery(shards[0], published_at=None, republish_at=timezone.now())
    assert run_sweep(shards[0], limit=3) == 3
    assert run_sweep(shards[0], limit=3) == 2
    assert Delivery.objects.using(shards[0]).filter(published_at__isnull=True).count() == 0


def test_after_a_memory_broker_restart_every_queued_delivery_is_due(shards, run_sweep):
    get_redis().rpush(delivery_queue("email", "normal"), b"keeps the queue non-empty")
    queued = [make_delivery(alias) for alias in shards]
    assert run_sweep() == 0
    assert republish_all_queued() == 2
    assert run_sweep() == 2
    assert {reload(d).status for d in queued} == {"queued"}


def test_beat_runs_one_sweep_per_shard_on_the_maintenance_queue(shards):
    """A shard that is down fails only its own sweep task (see test_workers for the real run)."""
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert {entry["args"] for entry in schedule.values()} == {(alias,) for alias in shards}
    assert {entry["options"]["queue"] for entry in schedule.values()} == {settings.MAINTENANCE_QUEUE}
    assert {entry["task"] for entry in schedule.values()} == {"delivery.sweep_shard"}


def test_after_an_outage_critical_deliveries_are_handed_out_first(shards, run_sweep):
    hour_ago = timezone.now() - timedelta(hours=1)
    low = [make_delivery(shards[0], priority="low", published_at=None, republish_at=hour_ago) for _ in range(3)]
    critical = make_delivery(shards[0], priority="critical", published_at=None, republish_at=hour_ago)
    assert run_sweep(shards[0], limit=2) == 2
    assert republished(critical) and sum(map(republished, low)) == 1


def test_a_lease_that_lapsed_after_the_provider_call_is_flagged_possibly_duplicated(shards, run_sweep):
    expired = timezone.now() - timedelta(seconds=1)
    handed = make_delivery(shards[0], status="sending", lease_expires_at=expired, handed_at=expired, attempts=1)
    not_handed = make_delivery(shards[0], status="sending", lease_expires_at=expired, attempts=1)
    assert run_sweep(shards[0]) == 2
    assert (reload(handed).possibly_duplicated, reload(handed).handed_at) == (True, None)
    assert reload(not_handed).possibly_duplicated is False
