"""Circuit breakers and token buckets per provider, shared in Redis by every worker process."""

import pytest

from config.redis import get_redis
from delivery.models import ConsoleMessage
from delivery.services import circuit, ratelimit
from delivery.services.dispatch import drain
from tests.support.factories import make_delivery, make_recipient, reload, send_body, user_on
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def fast_circuit(settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 3
    # Long enough that a loaded machine does not see it end between two steps of a test.
    settings.CIRCUIT_COOLDOWN_SECONDS = 2.0
    settings.PROVIDER_TIMEOUT_SECONDS = 1.0


def test_consecutive_failures_open_the_circuit_and_one_probe_closes_it(fast_circuit):
    assert circuit.allow("p").allowed
    circuit.record_failure("p")
    circuit.record_success("p")  # a success resets the count
    assert not any(circuit.record_failure("p") for _ in range(2))
    assert circuit.record_failure("p") is True  # the third in a row
    refused = circuit.allow("p")
    assert (refused.allowed, refused.state) == (False, "open") and 0 < refused.retry_in <= 2.0
    probe = wait_for(lambda: circuit.allow("p") if circuit.state("p") != "open" else None, timeout=5)
    assert (probe.allowed, probe.state) == (True, "half_open")
    assert not circuit.allow("p").allowed  # one probe at a time
    circuit.record_failure("p")  # the probe failed: open again
    assert circuit.allow("p").state == "open"
    wait_for(lambda: circuit.allow("p").allowed, timeout=5, message="the next probe")
    circuit.record_success("p")
    assert circuit.allow("p").state == "closed" and circuit.state("p") == "closed"


def test_the_bucket_gives_at_most_its_rate(settings):
    settings.PROVIDER_RATES = {"sms-gw": 4.0}
    settings.PROVIDER_BURST_SECONDS = 1.0
    taken, wait = ratelimit.take("sms-gw", 10)
    assert taken == 4 and 0 < wait <= 0.25
    assert ratelimit.take("sms-gw", 10)[0] == 0
    ratelimit.give_back("sms-gw", 3)
    assert ratelimit.take("sms-gw", 10)[0] == 3
    assert ratelimit.take("unlimited", 50) == (50, 0.0)


def test_while_every_circuit_is_open_a_drain_leaves_the_rows_untouched(shards, scripted, settings, fast_circuit):
    scripted.script = ["temporary"] * 3
    rows = [make_delivery(shards[0]) for _ in range(3)]
    for _ in range(3):  # three failed calls (one per drain) open the circuit
        make_due(rows)
        drain(shards[0], "email", "normal")
    assert circuit.state("scripted") == "open"
    calls = len(scripted.calls)
    make_due(rows)
    assert drain(shards[0], "email", "normal").claimed == 0
    assert len(scripted.calls) == calls  # the provider was not called
    assert {reload(r).status for r in rows} == {"queued"}
    attempts = {reload(r).attempts for r in rows}
    assert get_redis().llen("email.normal") >= 1  # a drain is rung for after the cool-down
    wait_for(lambda: circuit.state("scripted") == "half_open", timeout=10, message="the cool-down to end")
    drain(shards[0], "email", "normal")  # the probe succeeds (the script is used up)
    assert {reload(r).status for r in rows} == {"sent"} and circuit.state("scripted") == "closed"
    assert {reload(r).attempts for r in rows} == {a + 1 for a in attempts}


def make_due(rows):
    from delivery.models import Delivery

    for row in rows:
        Delivery.objects.using(row._state.db).filter(id=row.id).update(status="queued", next_attempt_at=None)


def test_an_empty_bucket_is_come_back_to_for_a_batch_not_for_every_token(settings):
    settings.PROVIDER_RATES = {"sms-gw": 10.0}
    settings.RATE_LIMITED_BATCH_SECONDS = 0.5
    assert ratelimit.wait_for_batch("sms-gw", 0.1, 50) == pytest.approx(0.5)  # 5 tokens at 10/s
    assert ratelimit.wait_for_batch("sms-gw", 0.1, 2) == pytest.approx(0.2)  # no more than a batch
    assert ratelimit.wait_for_batch("sms-gw", 0.9, 50) == pytest.approx(0.9)  # never sooner than one token
    assert ratelimit.wait_for_batch("unlimited", 0.0, 50) == 0.0


def test_a_drain_claims_only_what_the_rate_allows(shards, settings):
    settings.PROVIDER_RATES = {"console": 2.0}
    rows = [make_delivery(shards[0], channel="sms") for _ in range(5)]
    report = drain(shards[0], "sms", "normal")
    assert report.claimed == 2
    assert sorted(reload(r).status for r in rows) == ["queued"] * 3 + ["sent"] * 2
    assert {reload(r).attempts for r in rows if reload(r).status == "queued"} == {0}  # not even tried
    assert get_redis().llen("sms.normal") == 1  # rung again, to run once tokens are back
    assert ConsoleMessage.objects.filter(channel="sms").count() == 2


# --- across real worker processes ---------------------------------------------------------


@pytest.fixture
def two_workers(tmp_path):
    from tests.support.processes import start_worker

    started = []

    def start(queues, **env):
        started.extend(start_worker(tmp_path, queues, concurrency=1, **env) for _ in range(2))

    yield start
    for process in started:
        process.stop()


def _send(api, user, channel):
    response = api.post("/api/v1/notifications", send_body(user, channels=[channel]), format="json")
    assert response.status_code == 202, response.json()
    return response.json()["id"]


@pytest.mark.django_db(databases="__all__", transaction=True)
@pytest.mark.timeout(180)
def test_the_circuit_opens_and_closes_for_every_worker_process(api, shards, two_workers, tmp_path):
    from config.queues import channel_queues
    from tests.support.processes import start_beat

    env = {
        "EMAIL_PROVIDERS": "tests.support.providers.RedisSwitched",
        "CIRCUIT_FAILURE_THRESHOLD": "3",
        "CIRCUIT_COOLDOWN_SECONDS": "3",
        "PROVIDER_TIMEOUT_SECONDS": "1",
        "SWEEP_INTERVAL_SECONDS": "0.5",
    }
    get_redis().set("test:provider-down", 1)
    two_workers([*channel_queues("email"), "maintenance"], **env)
    beat = start_beat(tmp_path, **env)
    users = [user_on(shards[i % 2]) for i in range(6)]
    for user in users:
        make_recipient(user)
    try:
        ids = [_send(api, user, "email") for user in users]
        wait_for(lambda: circuit.state("switched") == "open", timeout=60, message="the shared circuit to open")
        failed_calls = ConsoleMessage.objects.count()
        assert failed_calls == 0
        get_redis().delete("test:provider-down")
        wait_for(lambda: all(_status(i) == "sent" for i in ids), timeout=90, message="sent after the probe")
        assert circuit.state("switched") == "closed"
    finally:
        beat.stop()
    assert ConsoleMessage.objects.count() == len(ids)


def _status(notification_id):
    from config.sharding import shard_for_id
    from delivery.models import Delivery

    return Delivery.objects.using(shard_for_id(notification_id)).get(notification_id=notification_id).status


@pytest.mark.django_db(databases="__all__", transaction=True)
@pytest.mark.timeout(180)
def test_the_bucket_holds_its_rate_across_worker_processes(api, shards, two_workers):
    from config.queues import channel_queues

    rate, count = 5.0, 25
    two_workers(channel_queues("sms"), PROVIDER_RATES=f"console={rate}", PROVIDER_BURST_SECONDS="1")
    users = [user_on(shards[i % 2]) for i in range(count)]
    for user in users:
        make_recipient(user)
    ids = [_send(api, user, "sms") for user in users]
    wait_for(lambda: ConsoleMessage.objects.filter(channel="sms").count() == count, timeout=120, message="all sent")
    times = sorted(ConsoleMessage.objects.filter(channel="sms").values_list("created_at", flat=True))
    burst = rate  # one second's worth
    for i, at in enumerate(times):
        # however the two workers interleave, message i cannot go before the bucket allowed it
        assert (at - times[0]).total_seconds() >= (i + 1 - burst) / rate - 0.25, (i, times)
    assert {_status(i) for i in ids} == {"sent"}
