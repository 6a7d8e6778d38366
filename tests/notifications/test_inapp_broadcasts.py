"""Broadcasts: one row for everyone, merged into every inbox by time, state per user written
lazily."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from notifications.models import BroadcastState
from notifications.services import broadcasts, user_tokens
from tests.support.factories import make_recipient, send_body

pytestmark = pytest.mark.django_db(databases="__all__")


def me(user_id: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_tokens.issue(user_id).token}")
    return client


def send(api, user_id: str) -> str:
    response = api.post("/api/v1/notifications", send_body(user_id, channels=["inapp"]), format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def test_a_broadcast_is_in_every_inbox_merged_by_time_with_state_per_user(api):
    make_recipient("alice")
    older = send(api, "alice")
    broadcast = str(broadcasts.create(title="Maintenance tonight", body="22:00-23:00 UTC").id)
    newer = send(api, "alice")
    alice, bob = me("alice"), me("bob")

    first = alice.get("/api/v1/me/inbox", {"limit": 2})
    assert ids(first) == [newer, broadcast] and first.json()["unread_count"] == 3
    assert ids(alice.get("/api/v1/me/inbox", {"limit": 2, "cursor": first.json()["next_cursor"]})) == [older]
    assert ids(bob.get("/api/v1/me/inbox")) == [broadcast]
    assert bob.get("/api/v1/me/inbox/unread-count").json() == {"unread_count": 1}
    assert BroadcastState.objects.for_user("bob").count() == 0  # nothing written for reading

    assert alice.post(f"/api/v1/me/inbox/{broadcast}/read").json() == {"changed": 1, "unread_count": 2}
    assert alice.post(f"/api/v1/me/inbox/{broadcast}/read").json()["changed"] == 0
    assert bob.get("/api/v1/me/inbox/unread-count").json() == {"unread_count": 1}  # bob's own state
    assert broadcast not in ids(alice.get("/api/v1/me/inbox", {"unread": "true"}))

    assert bob.post(f"/api/v1/me/inbox/{broadcast}/archive").json() == {"changed": 1, "unread_count": 0}
    assert ids(bob.get("/api/v1/me/inbox")) == []
    assert bob.get(f"/api/v1/me/inbox/{broadcast}").status_code == 404
    assert broadcast in ids(alice.get("/api/v1/me/inbox"))


def test_read_all_covers_broadcasts_and_only_active_ones_show():
    now = timezone.now()
    current = str(broadcasts.create(title="Now").id)
    broadcasts.create(title="Later", starts_at=now + timedelta(hours=1))
    broadcasts.create(title="Over", starts_at=now - timedelta(days=2), ends_at=now - timedelta(days=1))
    carol = me("carol")
    assert ids(carol.get("/api/v1/me/inbox")) == [current]
    assert carol.post("/api/v1/me/inbox/read-all").json() == {"changed": 1, "unread_count": 0}
    assert carol.get(f"/api/v1/me/inbox/{current}").json()["read"] is True


def test_resume_replays_broadcasts_after_the_cursor():
    from notifications.services import inbox

    before = str(broadcasts.create(title="Before").id)
    after = str(broadcasts.create(title="After").id)
    assert [item["id"] for item in inbox.items_after("dave", before, limit=10)] == [after]
