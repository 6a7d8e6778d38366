"""Idempotency: same key -> same notification; same key, other body -> 409."""

import pytest
from django.test import override_settings

from config.redis import get_redis
from notifications.models import Notification
from tests.support.factories import send_body, user_on

pytestmark = pytest.mark.django_db(databases="__all__")

URL = "/api/v1/notifications"


def test_same_key_and_body_returns_the_same_notification(api, shards):
    body = send_body(user_on(shards[0]))
    first = api.post(URL, body, format="json")
    second = api.post(URL, body, format="json")
    assert first.status_code == second.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["outcome"] == "duplicate"
    assert second.json()["channels"] == first.json()["channels"]
    assert Notification.objects.using(shards[0]).count() == 1


def test_same_key_with_another_body_is_a_conflict(api, shards):
    body = send_body(user_on(shards[0]))
    assert api.post(URL, body, format="json").status_code == 202
    changed = dict(body, data={"name": "Eve", "order_id": "E-1"})
    response = api.post(URL, changed, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert response.json()["errors"][0]["field"] == "idempotency_key"


def test_key_reused_for_another_user_is_a_conflict(api, shards):
    body = send_body(user_on(shards[0]))
    assert api.post(URL, body, format="json").status_code == 202
    response = api.post(URL, dict(body, user_id=user_on(shards[1])), format="json")
    assert response.status_code == 409


def test_keys_belong_to_their_client(api, shards, demo_catalog):
    from rest_framework.test import APIClient

    from tests.support.factories import make_key

    body = send_body(user_on(shards[0]))
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key()}")
    first = api.post(URL, body, format="json").json()
    second = other.post(URL, body, format="json").json()
    assert second["outcome"] == "queued"
    assert second["id"] != first["id"]


def test_database_answers_when_redis_forgot_the_key(api, shards):
    body = send_body(user_on(shards[1]))
    first = api.post(URL, body, format="json").json()
    get_redis().flushdb()

    again = api.post(URL, body, format="json")
    assert again.status_code == 202
    assert again.json() | {"channels": None} == {"id": first["id"], "outcome": "duplicate", "channels": None}

    get_redis().flushdb()
    conflict = api.post(URL, dict(body, data={"name": "Z", "order_id": "Z"}), format="json")
    assert conflict.status_code == 409
    assert Notification.objects.using(shards[1]).count() == 1


def test_sends_go_on_without_redis(api, shards):
    body = send_body(user_on(shards[0]))
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0", REDIS_SOCKET_TIMEOUT=0.2):
        first = api.post(URL, body, format="json")
        second = api.post(URL, body, format="json")
    assert first.status_code == 202 and first.json()["outcome"] == "queued"
    assert second.status_code == 202 and second.json()["outcome"] == "duplicate"
    assert second.json()["id"] == first.json()["id"]
    assert Notification.objects.using(shards[0]).count() == 1


def _pending_again(sender_key: str, key: str) -> None:
    """Rewrite a finished key as still pending (``p|...``), as a holder that died before
    recording it done would have left it."""
    redis_key = f"idem:{sender_key}:{key}"
    state, notification_id, fingerprint = get_redis().get(redis_key).decode().split("|")
    assert state == "d"
    get_redis().set(redis_key, f"p|{notification_id}|{fingerprint}", ex=60)


def _sender_key(api_key: str) -> str:
    from notifications.services.api_keys import authenticate_key
    from notifications.services.sending import Sender

    return Sender.for_client(authenticate_key(api_key)).key


def test_a_key_still_held_by_another_request_is_a_409_in_progress(api, api_key, shards, settings, run_on_commit):
    settings.IDEMPOTENCY_WAIT_SECONDS = 0.2
    body = send_body(user_on(shards[0]))
    with run_on_commit():  # the key is recorded done after commit
        assert api.post(URL, body, format="json").status_code == 202
    _pending_again(_sender_key(api_key), body["idempotency_key"])
    Notification.objects.using(shards[0]).all().delete()  # the holder has not committed yet
    response = api.post(URL, body, format="json")
    assert response.status_code == 409
    assert (response.json()["code"], response.json()["errors"][0]["field"]) == ("idempotency_in_progress", "idempotency_key")


def test_a_holder_that_committed_then_died_is_answered_from_the_database(api, api_key, shards, settings, run_on_commit):
    settings.IDEMPOTENCY_WAIT_SECONDS = 2.0
    body = send_body(user_on(shards[1]))
    with run_on_commit():
        first = api.post(URL, body, format="json").json()
    _pending_again(_sender_key(api_key), body["idempotency_key"])
    again = api.post(URL, body, format="json")
    assert again.status_code == 202
    assert (again.json()["id"], again.json()["outcome"]) == (first["id"], "duplicate")


def test_a_storage_failure_is_a_503_and_gives_the_key_back(api, api_key, shards, monkeypatch):
    from django.db import OperationalError

    from notifications.services import send as send_service

    body = send_body(user_on(shards[0]))

    def shard_down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(send_service, "insert_rows", shard_down)
    failed = api.post(URL, body, format="json")
    assert failed.status_code == 503
    assert (failed.json()["code"], failed["Retry-After"]) == ("storage_unavailable", "1")
    assert get_redis().get(f"idem:{_sender_key(api_key)}:{body['idempotency_key']}") is None
    monkeypatch.undo()
    retried = api.post(URL, body, format="json")  # not "in progress": the key was released
    assert retried.status_code == 202 and retried.json()["outcome"] == "queued"
