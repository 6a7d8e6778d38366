"""Liveness and readiness, on the real web server with real outages: readiness fails only
when the process cannot accept notifications."""

import httpx
import pytest
from django.test import Client

from tests.support.factories import make_key, make_recipient, send_body, user_on
from tests.support.processes import service_env, start_redis, start_web, wait_for

pytestmark = pytest.mark.django_db(databases="__all__")


def test_healthz_and_readyz_when_everything_is_up(shards):
    client = Client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert (body["status"], body["degraded"]) == ("ready", [])
    assert set(body["checks"]) == {"database:default", *(f"database:{a}" for a in shards), "redis", "broker"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db(databases="__all__", transaction=True)
@pytest.mark.timeout(120)
def test_a_redis_outage_degrades_readiness_but_sends_are_still_accepted(tmp_path, shards, demo_catalog):
    redis, port = start_redis(tmp_path)
    private = f"redis://127.0.0.1:{port}/0"
    web, base = start_web(tmp_path, workers=1, REDIS_URL=private, CELERY_BROKER_URL=private, REDIS_SOCKET_TIMEOUT="0.5")
    key = make_key()
    user = user_on(shards[0])
    make_recipient(user)
    try:
        assert httpx.get(f"{base}/readyz").json()["status"] == "ready"
        redis.stop()
        during = httpx.get(f"{base}/readyz", timeout=20)
        assert during.status_code == 200
        assert (during.json()["status"], during.json()["degraded"]) == ("degraded", ["broker", "redis"])
        sent = httpx.post(
            f"{base}/api/v1/notifications", json=send_body(user), headers={"Authorization": f"Bearer {key}"}, timeout=20
        )
        assert sent.status_code == 202, sent.text
        redis, _ = start_redis(tmp_path, port=port)
        wait_for(lambda: httpx.get(f"{base}/readyz", timeout=20).json()["status"] == "ready", timeout=30)
    finally:
        web.stop()
        redis.stop()


@pytest.mark.django_db(databases="__all__", transaction=True)
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "down, status, code",
    [
        ({"shard_1"}, "degraded", 200),  # sends to users on shard_0 are still accepted
        ({"shard_0", "shard_1"}, "unavailable", 503),
        ({"default"}, "unavailable", 503),  # no API clients, types or templates
    ],
)
def test_readiness_fails_only_when_the_process_cannot_accept(tmp_path, shards, down, status, code):
    dead = "postgres://postgres@127.0.0.1:1/gone"
    env = service_env()
    urls = dict(zip(shards, env["SHARD_DATABASE_URLS"].split(","), strict=True))
    overrides = {"SHARD_DATABASE_URLS": ",".join(dead if alias in down else url for alias, url in urls.items())}
    if "default" in down:
        overrides["DATABASE_URL"] = dead
    web, base = start_web(tmp_path, workers=1, **overrides)
    try:
        response = httpx.get(f"{base}/readyz", timeout=20)
        assert (response.status_code, response.json()["status"]) == (code, status)
        assert set(response.json()["degraded"]) == {f"database:{alias}" for alias in down}
        assert httpx.get(f"{base}/healthz").status_code == 200  # alive, whatever is down
    finally:
        web.stop()
