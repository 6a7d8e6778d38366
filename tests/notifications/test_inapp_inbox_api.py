"""The end-user inbox API (/api/v1/me/): user-token auth, cursor pages, filters, the unread
count, and only ever the caller's own rows."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from config.sharding import shard_for_user
from notifications.models import InboxItem
from notifications.services import inbox, user_tokens
from tests.support.factories import make_key, make_recipient, send_body

pytestmark = pytest.mark.django_db(databases="__all__")


def me(user_id: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_tokens.issue(user_id).token}")
    return client


def send(api, user_id: str, **body) -> str:
    response = api.post("/api/v1/notifications", send_body(user_id, channels=["inapp"], **body), format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def test_pages_are_newest_first_and_stable_while_notifications_arrive(api):
    make_recipient("alice")
    sent = [send(api, "alice") for _ in range(5)]
    alice = me("alice")
    first = alice.get("/api/v1/me/inbox", {"limit": 2})
    assert ids(first) == [sent[4], sent[3]]
    assert first.json()["unread_count"] == 5
    newer = [send(api, "alice") for _ in range(2)]  # arrive between two page reads
    second = alice.get("/api/v1/me/inbox", {"limit": 2, "cursor": first.json()["next_cursor"]})
    assert ids(second) == [sent[2], sent[1]]
    last = alice.get("/api/v1/me/inbox", {"limit": 2, "cursor": second.json()["next_cursor"]})
    assert ids(last) == [sent[0]] and last.json()["next_cursor"] is None
    assert ids(alice.get("/api/v1/me/inbox", {"limit": 2})) == [newer[1], newer[0]]


def test_unread_and_category_filters_and_marking(api):
    make_recipient("alice")
    first, second, third = (send(api, "alice") for _ in range(3))
    security = send(api, "alice", type="security_alert", data={"event": "New sign-in"})
    alice = me("alice")
    assert alice.post(f"/api/v1/me/inbox/{second}/read").json() == {"changed": 1, "unread_count": 3}
    assert alice.post(f"/api/v1/me/inbox/{second}/read").json() == {"changed": 0, "unread_count": 3}
    assert ids(alice.get("/api/v1/me/inbox", {"unread": "true"})) == [security, third, first]
    assert ids(alice.get("/api/v1/me/inbox", {"category": "security"})) == [security]
    assert alice.post(f"/api/v1/me/inbox/{first}/seen").json()["changed"] == 1
    assert alice.get(f"/api/v1/me/inbox/{first}").json()["seen"] is True
    assert alice.post(f"/api/v1/me/inbox/{third}/archive").json() == {"changed": 1, "unread_count": 2}
    assert third not in ids(alice.get("/api/v1/me/inbox"))
    assert alice.post("/api/v1/me/inbox/read", {"ids": [first]}, format="json").json()["unread_count"] == 1
    assert alice.post("/api/v1/me/inbox/read-all").json() == {"changed": 1, "unread_count": 0}
    assert alice.get("/api/v1/me/inbox/unread-count").json() == {"unread_count": 0}


def test_scheduled_items_count_only_once_visible(api):
    make_recipient("alice")
    send(api, "alice")
    later = send(api, "alice", send_at=(timezone.now() + timedelta(hours=1)).isoformat())
    alice = me("alice")
    assert alice.get("/api/v1/me/inbox/unread-count").json() == {"unread_count": 1}
    assert later not in ids(alice.get("/api/v1/me/inbox"))
    InboxItem.objects.for_user("alice").filter(notification_id=later).update(visible_at=timezone.now())
    assert alice.get("/api/v1/me/inbox/unread-count").json() == {"unread_count": 2}


def test_another_users_items_are_not_found(api):
    make_recipient("alice")
    make_recipient("bob")
    theirs = send(api, "alice")
    bob = me("bob")
    assert bob.get(f"/api/v1/me/inbox/{theirs}").status_code == 404
    for action in ("read", "seen", "archive"):
        response = bob.post(f"/api/v1/me/inbox/{theirs}/{action}")
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert bob.post("/api/v1/me/inbox/read", {"ids": [theirs]}, format="json").json() == {
        "changed": 0,
        "unread_count": 0,
    }
    assert bob.post("/api/v1/me/inbox/read-all").json()["changed"] == 0
    assert ids(bob.get("/api/v1/me/inbox")) == []
    assert me("alice").get(f"/api/v1/me/inbox/{theirs}").json()["read"] is False


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/me/inbox", {"limit": "0"}, "limit"),
        ("/api/v1/me/inbox", {"limit": "x"}, "limit"),
        ("/api/v1/me/inbox", {"cursor": "nope"}, "cursor"),
        ("/api/v1/me/inbox", {"unread": "maybe"}, "unread"),
        ("/api/v1/me/inbox", {"category": "gossip"}, "category"),
        ("/api/v1/me/inbox/not-an-id", {}, "notification_id"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(path, params, field):
    response = me("alice").get(path, params)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_bad_ids_in_a_body_are_named():
    response = me("alice").post("/api/v1/me/inbox/read", {"ids": ["x"]}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "ids[0]"


def test_user_tokens_not_api_keys(api_key):
    assert APIClient().get("/api/v1/me/inbox").status_code == 401
    with_key = APIClient()
    with_key.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert with_key.get("/api/v1/me/inbox").status_code == 401
    # ... and a user token is no API key.
    assert me("alice").get("/api/v1/recipients/alice").status_code == 401


def test_the_token_endpoint_needs_its_scope(api, demo_catalog):
    # A key gets the tokens scope only on purpose: not the default one.
    assert api.post("/api/v1/recipients/alice/token").status_code == 403
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(scopes=['tokens'])}")
    response = api.post("/api/v1/recipients/alice/token", {"ttl_seconds": 60}, format="json")
    assert response.status_code == 201
    assert user_tokens.verify(response.json()["token"]) == "alice"
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(scopes=['send'])}")
    assert other.post("/api/v1/recipients/alice/token").status_code == 403
    too_long = api.post("/api/v1/recipients/alice/token", {"ttl_seconds": 10**9}, format="json")
    assert too_long.status_code == 400 and too_long.json()["errors"][0]["field"] == "ttl_seconds"


def test_the_unread_count_reads_a_counter_not_the_inbox(api):
    make_recipient("alice")
    send(api, "alice")
    alias = shard_for_user("alice")
    with CaptureQueriesContext(connections[alias]) as queries:
        assert inbox.unread_count("alice") == 1
    # The counter row by key, then the items not visible yet (an index range): no count of
    # the whole inbox.
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert len(counts) == 1 and '"visible_at" >' in counts[0]


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_the_unread_count_stays_exact_under_concurrent_marks_and_arrivals(demo_catalog):
    make_recipient("alice")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key()}")
    existing = [send(api, "alice") for _ in range(20)]
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def run(work) -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def arrive() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=api._credentials["HTTP_AUTHORIZATION"])
        for _ in range(5):
            send(client, "alice")

    works = [
        lambda: inbox.mark_read("alice", existing),
        lambda: inbox.mark_read("alice", existing[::2]),
        lambda: inbox.mark_all_read("alice"),
        lambda: inbox.archive("alice", existing[:5]),
        arrive,
        arrive,
    ]
    threads = [threading.Thread(target=run, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    actual = InboxItem.objects.for_user("alice").filter(read_at__isnull=True, archived_at__isnull=True).count()
    assert inbox.unread_count("alice") == actual
