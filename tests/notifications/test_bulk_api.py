"""POST /api/v1/notifications/bulk."""

import pytest
from django.conf import settings

from config.sharding import shard_for_id, shard_for_user
from delivery.models import Delivery
from notifications.models import Notification
from notifications.schemas import BulkSendResponse
from tests.support.factories import make_key, send_body, user_on

pytestmark = pytest.mark.django_db(databases="__all__")

URL = "/api/v1/notifications/bulk"


def test_items_are_answered_in_order_and_stored_on_their_shards(api, shards):
    users = [user_on(shards[i % 2]) for i in range(10)]
    items = [send_body(user, channels=["inapp"]) for user in users]

    response = api.post(URL, {"items": items}, format="json")

    assert response.status_code == 202, response.json()
    body = BulkSendResponse.model_validate(response.json())
    assert (body.accepted, body.duplicates, body.failed) == (10, 0, 0)
    assert [r.index for r in body.results] == list(range(10))
    for user, result in zip(users, body.results, strict=True):
        assert result.outcome == "queued"
        assert shard_for_id(result.id) == shard_for_user(user)
        stored = Notification.objects.using(shard_for_user(user)).get(id=result.id)
        assert stored.user_id == user
    assert Notification.objects.using(shards[0]).count() == 5
    assert Notification.objects.using(shards[1]).count() == 5


def test_a_thousand_items_are_accepted(api, shards):
    items = [send_body(f"bulk-{i}", channels=["inapp", "push"]) for i in range(1000)]
    response = api.post(URL, {"items": items}, format="json")
    assert response.status_code == 202
    assert response.json()["accepted"] == 1000
    assert sum(Delivery.objects.using(alias).count() for alias in shards) == 2000


def test_more_than_a_thousand_items_is_refused(api):
    items = [send_body(f"bulk-{i}") for i in range(1001)]
    response = api.post(URL, {"items": items}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "items"
    assert response.json()["errors"][0]["code"] == "too_long"


def test_empty_bulk_is_refused(api):
    response = api.post(URL, {"items": []}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "items"


def test_one_invalid_item_rejects_the_whole_request(api, shards):
    items = [send_body(user_on(shards[0])), send_body(user_on(shards[1]), priority="urgent"), send_body("x", type="nope")]
    response = api.post(URL, {"items": items}, format="json")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["items[1].priority"]
    assert not any(Notification.objects.using(alias).exists() for alias in settings.SHARD_ALIASES)

    items[1]["priority"] = "low"
    response = api.post(URL, {"items": items}, format="json")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["items[2].type"]
    assert not any(Notification.objects.using(alias).exists() for alias in settings.SHARD_ALIASES)


def test_missing_template_variables_reject_the_whole_request(api, shards):
    items = [send_body(user_on(shards[0])), send_body(user_on(shards[1]), data={"name": "x"})]
    response = api.post(URL, {"items": items}, format="json")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert (error["field"], error["code"]) == ("items[1].data.order_id", "missing_variable")
    assert not any(Notification.objects.using(alias).exists() for alias in settings.SHARD_ALIASES)


def test_a_forbidden_item_rejects_the_whole_request(api, shards, demo_catalog):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(types=['order_shipped'])}")
    items = [send_body(user_on(shards[0])), send_body(user_on(shards[0]), type="promotion", data={"headline": "h", "offer": "o"})]
    response = api.post(URL, {"items": items}, format="json")
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "items[1].type"
    assert not Notification.objects.using(shards[0]).exists()


def test_repeated_keys_inside_one_request(api, shards):
    user = user_on(shards[0])
    same = send_body(user, idempotency_key="k1")
    other_body = send_body(user, idempotency_key="k1", data={"name": "Bob", "order_id": "B-2"})
    response = api.post(URL, {"items": [same, dict(same), other_body]}, format="json")
    assert response.status_code == 202
    first, repeat, clash = response.json()["results"]
    assert first["outcome"] == "queued"
    assert repeat["outcome"] == "duplicate" and repeat["id"] == first["id"]
    assert clash["error"]["status"] == 409 and clash["error"]["errors"][0]["field"] == "items[2].idempotency_key"
    assert response.json()["accepted"] == 1
    assert Notification.objects.using(shards[0]).count() == 1


def test_bulk_repeats_earlier_sends_as_duplicates(api, shards):
    items = [send_body(user_on(shards[i % 2])) for i in range(4)]
    first = api.post(URL, {"items": items}, format="json").json()
    again = api.post(URL, {"items": items}, format="json").json()
    assert again["accepted"] == 0 and again["duplicates"] == 4
    assert [r["id"] for r in again["results"]] == [r["id"] for r in first["results"]]
    assert all(r["outcome"] == "duplicate" for r in again["results"])
    assert all(len(r["channels"]) == 3 for r in again["results"])


def test_large_batches_store_the_same_content_as_single_sends(api, shards):
    """Bulk batches take the COPY path; what they store must equal the INSERT path's."""
    user = user_on(shards[0])
    from tests.support.factories import make_recipient

    make_recipient(user, email="copy@example.com")
    items = [send_body(user, data={"name": "Zoë <&>", "order_id": f"C-{i}", "nested": {"a": [1, 2]}}) for i in range(100)]
    response = api.post(URL, {"items": items}, format="json")
    assert response.status_code == 202
    first = response.json()["results"][0]["id"]
    notification = Notification.objects.using(shards[0]).get(id=first)
    assert notification.data == {"name": "Zoë <&>", "order_id": "C-0", "nested": {"a": [1, 2]}}
    email = Delivery.objects.using(shards[0]).get(notification_id=first, channel="email")
    assert email.payload["subject"] == "Order C-0 has shipped"
    assert "Zoë &lt;&amp;&gt;" in email.payload["html"]
    assert email.address == "copy@example.com" and email.attempts == 0 and email.published_at is not None
    from notifications.models import InboxItem

    assert InboxItem.objects.using(shards[0]).get(notification_id=first).title == "Order C-0 has shipped"


def test_inline_recipients_repeated_in_a_bulk_are_written_once_last_wins(api, shards):
    from notifications.models import Recipient

    user = user_on(shards[1])
    first = send_body(None, recipient={"user_id": user, "email": "one@example.com", "locale": "fr"})
    second = send_body(None, recipient={"user_id": user, "email": "two@example.com"})
    for item in (first, second):
        del item["user_id"]
    response = api.post(URL, {"items": [first, second]}, format="json")
    assert response.json()["accepted"] == 2
    recipient = Recipient.objects.using(shards[1]).get(user_id=user)
    assert (recipient.email, recipient.locale) == ("two@example.com", "fr")
