"""Idempotency under real concurrency: 100 simultaneous identical requests to the real web server."""

import threading

import httpx
import pytest

from notifications.models import Notification
from tests.support.factories import make_key, send_body, user_on
from tests.support.processes import start_web

pytestmark = [pytest.mark.django_db(databases="__all__", transaction=True), pytest.mark.timeout(180)]


@pytest.fixture
def server(tmp_path):
    process, base = start_web(tmp_path)
    yield base
    process.stop()


def fire_together(n: int, request) -> list[httpx.Response]:
    barrier = threading.Barrier(n)
    responses: list = [None] * n

    def run(i: int) -> None:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            responses[i] = request(client)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def test_100_concurrent_identical_requests_create_one_notification(server, shards, demo_catalog):
    key = make_key()
    body = send_body(user_on(shards[1]))
    headers = {"Authorization": f"Bearer {key}"}

    responses = fire_together(100, lambda c: c.post(f"{server}/api/v1/notifications", json=body, headers=headers))

    assert [r.status_code for r in responses] == [202] * 100, {r.status_code: r.text for r in responses}
    outcomes = sorted(r.json()["outcome"] for r in responses)
    assert outcomes == ["duplicate"] * 99 + ["queued"]
    assert len({r.json()["id"] for r in responses}) == 1
    assert Notification.objects.using(shards[1]).count() == 1


def test_concurrent_requests_with_one_key_and_different_bodies(server, shards, demo_catalog):
    key = make_key()
    user = user_on(shards[0])
    bodies = [send_body(user, idempotency_key="shared", data={"name": f"n{i}", "order_id": str(i)}) for i in range(20)]
    headers = {"Authorization": f"Bearer {key}"}
    counter = iter(range(20))
    lock = threading.Lock()

    def post(client):
        with lock:
            body = bodies[next(counter)]
        return client.post(f"{server}/api/v1/notifications", json=body, headers=headers)

    responses = fire_together(20, post)
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] + [409] * 19
    assert Notification.objects.using(shards[0]).count() == 1
