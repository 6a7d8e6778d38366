"""POST /api/v1/notifications: what a calling service sees."""

from datetime import timedelta

import pytest
from django.utils import timezone

from config.sharding import shard_for_id
from delivery.models import Delivery
from notifications.models import InboxItem, Notification, Recipient
from notifications.schemas import SendNotificationResponse
from tests.support.factories import make_key, make_recipient, send_body, user_on

pytestmark = pytest.mark.django_db(databases="__all__")

URL = "/api/v1/notifications"


def rows_everywhere(model) -> int:
    from django.conf import settings

    return sum(model.objects.using(alias).count() for alias in settings.SHARD_ALIASES)


def test_send_queues_every_default_channel_and_stores_rendered_content(api, shards):
    user = user_on(shards[1])
    make_recipient(user, email="ada@example.com")

    response = api.post(URL, send_body(user), format="json")

    assert response.status_code == 202, response.json()
    body = SendNotificationResponse.model_validate(response.json())
    assert body.outcome == "queued"
    assert [(c.channel, c.status) for c in body.channels] == [("email", "queued"), ("push", "queued"), ("inapp", "queued")]
    assert shard_for_id(body.id) == shards[1]
    email = Delivery.objects.using(shards[1]).get(notification_id=body.id, channel="email")
    assert email.address == "ada@example.com"
    assert email.payload["subject"] == "Order A-100 has shipped"
    assert "order <strong>A-100</strong>" in email.payload["html"]
    inbox = InboxItem.objects.using(shards[1]).get(notification_id=body.id)
    assert inbox.title == "Order A-100 has shipped"
    assert inbox.action_url == "/orders/A-100"
    # Nothing for this user anywhere else.
    assert not Notification.objects.using(shards[0]).filter(user_id=user).exists()


def test_channels_without_an_address_are_skipped_with_a_reason(api, shards):
    user = user_on(shards[0])  # no recipient record at all

    response = api.post(URL, send_body(user, type="security_alert", data={"event": "New login"}), format="json")

    assert response.status_code == 202
    channels = {c["channel"]: (c["status"], c["reason"]) for c in response.json()["channels"]}
    assert channels == {
        "email": ("skipped", "no_email_address"),
        "sms": ("skipped", "no_phone_number"),
        "push": ("queued", ""),
        "inapp": ("queued", ""),
    }


def test_nothing_deliverable_is_accepted_as_undeliverable(api, shards):
    user = user_on(shards[0])
    response = api.post(URL, send_body(user, channels=["email", "sms"]), format="json")
    assert response.status_code == 202
    assert response.json()["outcome"] == "undeliverable"
    assert {c["status"] for c in response.json()["channels"]} == {"skipped"}


def test_explicit_channels_and_priority_are_honoured(api, shards):
    user = user_on(shards[0])
    make_recipient(user)
    response = api.post(URL, send_body(user, channels=["sms"], priority="high"), format="json")
    assert response.status_code == 202, response.json()
    delivery = Delivery.objects.using(shards[0]).get(notification_id=response.json()["id"])
    assert (delivery.channel, delivery.priority, delivery.address) == ("sms", "high", "+14155550123")
    assert delivery.payload == {"body": "Good news Ada: order A-100 is on its way."}


def test_send_at_schedules_the_deliveries(api, shards):
    user = user_on(shards[0])
    send_at = timezone.now() + timedelta(hours=2)
    response = api.post(URL, send_body(user, channels=["inapp"], send_at=send_at.isoformat()), format="json")
    assert response.status_code == 202
    assert response.json()["outcome"] == "scheduled"
    delivery = Delivery.objects.using(shards[0]).get(notification_id=response.json()["id"])
    assert delivery.status == "scheduled"
    assert delivery.next_attempt_at == send_at
    assert InboxItem.objects.using(shards[0]).get(notification_id=delivery.notification_id).visible_at == send_at


def test_inline_recipient_is_stored_and_used(api, shards):
    user = user_on(shards[1])
    body = send_body(None, recipient={"user_id": user, "email": "new@example.com", "locale": "fr_CA"})
    del body["user_id"]
    response = api.post(URL, body, format="json")
    assert response.status_code == 202, response.json()
    recipient = Recipient.objects.using(shards[1]).get(user_id=user)
    assert (recipient.email, recipient.locale) == ("new@example.com", "fr-CA")
    email = Delivery.objects.using(shards[1]).get(notification_id=response.json()["id"], channel="email")
    assert email.address == "new@example.com"


def test_critical_priority_needs_a_critical_key_and_a_type_that_allows_it(api, shards, demo_catalog):
    user = user_on(shards[0])
    ok = api.post(URL, send_body(user, type="security_alert", priority="critical", data={"event": "x"}), format="json")
    assert ok.status_code == 202

    not_for_type = api.post(URL, send_body(user, priority="critical"), format="json")
    assert not_for_type.status_code == 400
    assert not_for_type.json()["errors"][0]["field"] == "priority"

    plain_key = make_key(critical=False)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plain_key}")
    forbidden = api.post(
        URL, send_body(user, type="security_alert", priority="critical", data={"event": "x"}), format="json"
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["errors"][0] == {
        "field": "priority",
        "code": "critical_not_allowed",
        "message": "this API key may not send critical priority",
    }


def test_a_key_scoped_to_other_types_is_refused(api, shards, demo_catalog):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(types=['payment_confirmed'])}")
    response = api.post(URL, send_body(user_on(shards[0])), format="json")
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "type"
    assert rows_everywhere(Notification) == 0


def test_a_key_without_the_send_scope_is_refused(api, shards, demo_catalog):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(scopes=['status'])}")
    response = api.post(URL, send_body(user_on(shards[0])), format="json")
    assert response.status_code == 403
    assert "send" in response.json()["message"]


@pytest.mark.parametrize(
    "header", [None, "Bearer nk_nope0000_wrong", "Token abc", "Bearer ", "Bearer nk_demo0000_localdemokeyforembeddedprofileonly"]
)
def test_missing_or_bad_keys_get_401(api, shards, header):
    if header is None:
        api.credentials()
    else:
        api.credentials(HTTP_AUTHORIZATION=header)
    response = api.post(URL, send_body(user_on(shards[0])), format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] in {"not_authenticated", "authentication_failed"}


def test_a_revoked_key_stops_working(api, api_key, shards):
    from notifications.models import ApiClient

    client = ApiClient.objects.get(name="test-client")
    client.is_active = False
    client.save()
    assert api.post(URL, send_body(user_on(shards[0])), format="json").status_code == 401


def test_only_a_hash_of_the_key_is_stored(api_key):
    from notifications.models import ApiClient
    from notifications.services.api_keys import hash_key

    client = ApiClient.objects.get(name="test-client")
    secret = api_key.split("_", 2)[2]  # the secret part may itself contain "_"
    assert len(secret) >= 40
    assert api_key not in (client.key_hash, client.key_prefix)
    assert secret not in client.key_hash and client.key_hash == hash_key(api_key)


def test_data_with_huge_integers_is_stored_exactly(api, shards):
    user = user_on(shards[0])
    data = {"name": "Ada", "order_id": "A-1", "big": 123456789012345678901234567890, "ratio": 0.1}
    response = api.post(URL, send_body(user, channels=["inapp"], data=data), format="json")
    assert response.status_code == 202, response.json()
    stored = Notification.objects.using(shards[0]).get(id=response.json()["id"])
    assert stored.data == data


def test_timestamps_are_rfc3339_utc(api, shards):
    user = user_on(shards[0])
    notification_id = api.post(URL, send_body(user, channels=["inapp"]), format="json").json()["id"]
    created = api.get(f"{URL}/{notification_id}").json()["created_at"]
    assert created.endswith("Z") and "T" in created
    from datetime import datetime

    assert datetime.fromisoformat(created.replace("Z", "+00:00")).tzinfo is not None
