"""project_task retries a task that failed on the infrastructure (database, broker, Redis),
and lets every other error through; the retry really goes to the broker."""

from __future__ import annotations

import base64
import json
import uuid

import kombu.exceptions
import pytest
import redis.exceptions
from celery.exceptions import Reject, Retry
from django.db import InterfaceError, OperationalError

from config.celery import project_task
from config.redis import get_redis
from tests.support.processes import publishing_to

QUEUE = f"test-retries-{uuid.uuid4().hex[:8]}"
calls: list[str] = []
failure: list[BaseException] = []


@project_task("tests.config.flaky", queue=QUEUE)
def flaky(item: str) -> str:
    calls.append(item)
    if failure:
        raise failure[0]
    return f"done {item}"


@pytest.fixture(autouse=True)
def _clean():
    calls.clear()
    failure.clear()
    yield
    get_redis().delete(QUEUE)


def run_as_worker(*args, retries: int = 0):
    """Run the task body as a worker runs it: with a request of a delivered message."""
    flaky.push_request(
        id=str(uuid.uuid4()), args=list(args), kwargs={}, retries=retries, called_directly=False, is_eager=False
    )
    try:
        return flaky.run(*args)
    finally:
        flaky.pop_request()


def published() -> list[dict]:
    return [json.loads(raw) for raw in get_redis().lrange(QUEUE, 0, -1)]


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("server closed the connection unexpectedly"),
        InterfaceError("connection already closed"),
        kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379"),
        redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
    ],
)
def test_an_infrastructure_error_retries_the_task_through_the_broker(error):
    failure.append(error)
    with pytest.raises(Retry) as raised:
        run_as_worker("a")
    assert 0.5 <= raised.value.when <= 1.0  # first backoff: 1 s, jittered down to half
    (message,) = published()
    assert message["headers"]["task"] == "tests.config.flaky"
    assert message["headers"]["retries"] == 1
    assert message["headers"]["eta"]
    assert json.loads(base64.b64decode(message["body"]))[0] == ["a"]


@pytest.mark.parametrize(("retries", "low", "high"), [(3, 4.0, 8.0), (30, 30.0, 60.0), (5000, 30.0, 60.0)])
def test_the_backoff_doubles_up_to_its_cap(retries, low, high):
    failure.append(OperationalError("the database system is starting up"))
    with pytest.raises(Retry) as raised:
        run_as_worker("a", retries=retries)
    assert low <= raised.value.when <= high
    assert published()[0]["headers"]["retries"] == retries + 1  # no limit on the number of retries


def test_when_the_broker_cannot_take_the_retry_the_message_is_requeued_not_dropped():
    failure.append(OperationalError("server closed the connection unexpectedly"))
    with publishing_to("redis://127.0.0.1:1/0"), pytest.raises(Reject) as raised:
        run_as_worker("a")
    assert raised.value.requeue is True


def test_other_errors_and_successes_pass_through():
    assert run_as_worker("a") == "done a"
    failure.append(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        run_as_worker("b")
    assert published() == []
    assert calls == ["a", "b"]


def test_a_direct_call_sees_the_error_itself():
    failure.append(OperationalError("server closed the connection unexpectedly"))
    with pytest.raises(OperationalError):
        flaky("a")
    assert published() == []
