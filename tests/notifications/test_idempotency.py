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
