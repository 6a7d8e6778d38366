"""The admin: operators find a user's rows on whatever shard holds them."""

import re

import pytest

from delivery.models import Delivery
from delivery.services.dispatch import deliver_batch
from notifications.models import ApiClient, Notification
from notifications.services.api_keys import hash_key
from tests.support.factories import make_recipient, send_body, user_on
from tests.support.providers import ScriptedProvider

pytestmark = pytest.mark.django_db(databases="__all__")


def send(api, user, **overrides) -> str:
    return api.post("/api/v1/notifications", send_body(user, **overrides), format="json").json()["id"]


def test_searching_a_user_id_goes_to_that_users_shard(staff, api, shards):
    user = user_on(shards[1], "findme")
    other = user_on(shards[1], "other")
    mine = send(api, user, channels=["inapp"])
    send(api, other, channels=["inapp"])
    page = staff.get(f"/admin/notifications/notification/?q={user}").content.decode()
    assert mine in page and other not in page
    deliveries = staff.get(f"/admin/delivery/delivery/?q={user}").content.decode()
    assert str(Delivery.objects.using(shards[1]).get(notification_id=mine).id) in deliveries


def test_searching_a_notification_id_finds_its_deliveries(staff, api, shards):
    notification_id = send(api, user_on(shards[1]), channels=["inapp", "push"])
    page = staff.get(f"/admin/delivery/delivery/?q={notification_id}").content.decode()
    for delivery in Delivery.objects.using(shards[1]).filter(notification_id=notification_id):
        assert str(delivery.id) in page


def test_detail_pages_route_by_id(staff, api, shards):
    user = user_on(shards[1])
    make_recipient(user)
    notification_id = send(api, user, channels=["email"])
    deliver_batch(Delivery.objects.using(shards[1]).values_list("id", flat=True))
    page = staff.get(f"/admin/notifications/notification/{notification_id}/change/")
    assert page.status_code == 200
    assert re.search(r'<div class="readonly">sent\b', page.content.decode())
    assert staff.get(f"/admin/notifications/recipient/{user}/change/").status_code == 200
    missing = staff.get("/admin/notifications/notification/not-an-id/change/")
    assert missing.status_code == 302  # Django's "does not exist" redirect


def test_failed_deliveries_can_be_requeued_from_the_admin(staff, api, shards, settings):
    ScriptedProvider.reset()
    ScriptedProvider.script = ["permanent"]
    settings.NOTIFY_PROVIDERS = {**settings.NOTIFY_PROVIDERS, "inapp": "tests.support.providers.ScriptedProvider"}
    notification_id = send(api, user_on(shards[0]), channels=["inapp"])
    deliver_batch(Delivery.objects.using(shards[0]).values_list("id", flat=True))
    delivery = Delivery.objects.using(shards[0]).get(notification_id=notification_id)
    assert delivery.status == "failed"
    response = staff.post(
        f"/admin/delivery/delivery/?shard={shards[0]}",
        {"action": "requeue_selected", "_selected_action": [str(delivery.id)]},
        follow=True,
    )
    assert "1 deliveries queued to be sent again" in response.content.decode()
    assert Delivery.objects.using(shards[0]).get(id=delivery.id).status == "queued"
    ScriptedProvider.reset()


def test_adding_an_api_client_shows_its_key_once(staff, demo_catalog):
    response = staff.post(
        "/admin/notifications/apiclient/add/",
        {"name": "orders", "allowed_types": ["order_shipped"], "scopes": ["send"], "is_active": "on"},
        follow=True,
    )
    text = response.content.decode()
    assert "shown only now" in text
    key = text.split("store it safely): ")[1].split("<")[0].strip()
    client = ApiClient.objects.get(name="orders")
    assert client.key_hash == hash_key(key)
    assert staff.get(f"/admin/notifications/apiclient/{client.pk}/change/").content.decode().count(key) == 0


def test_revoking_an_api_client_locks_its_key_out(staff, demo_catalog, shards):
    from rest_framework.test import APIClient

    from tests.support.factories import make_key

    key = make_key("doomed")
    make_key("spared")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.post("/api/v1/notifications", send_body(user_on(shards[0])), format="json").status_code == 202
    doomed = ApiClient.objects.get(name="doomed")
    response = staff.post(
        "/admin/notifications/apiclient/", {"action": "revoke", "_selected_action": [str(doomed.pk)]}, follow=True
    )
    assert "Revoked 1 API client" in response.content.decode()
    assert api.post("/api/v1/notifications", send_body(user_on(shards[0])), format="json").status_code == 401
    assert ApiClient.objects.get(name="spared").is_active


def test_notifications_are_read_only_in_the_admin(staff, api, shards):
    notification_id = send(api, user_on(shards[0]), channels=["inapp"])
    assert staff.get("/admin/notifications/notification/add/").status_code == 403
    response = staff.post(f"/admin/notifications/notification/{notification_id}/change/", {"priority": "low"})
    assert response.status_code == 403
    assert Notification.objects.using(shards[0]).get(id=notification_id).priority == "normal"


def test_recipients_can_be_added_edited_and_deleted_on_their_shard(staff, shards):
    user = user_on(shards[1], "adm")
    response = staff.post(
        "/admin/notifications/recipient/add/",
        {"user_id": user, "email": "adm@example.com", "email_verified": "on", "phone": "", "phone_verified": "on",
         "locale": "en", "timezone": "UTC"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    from notifications.models import Recipient

    assert Recipient.objects.using(shards[1]).get(user_id=user).email == "adm@example.com"
    response = staff.post(
        f"/admin/notifications/recipient/{user}/change/",
        {"email": "new@example.com", "email_verified": "on", "phone": "", "phone_verified": "on", "locale": "en",
         "timezone": "UTC"},
    )  # fmt: skip
    assert response.status_code == 302
    assert Recipient.objects.using(shards[1]).get(user_id=user).email == "new@example.com"
    assert staff.post(f"/admin/notifications/recipient/{user}/delete/", {"post": "yes"}).status_code == 302
    assert not Recipient.objects.using(shards[1]).filter(user_id=user).exists()
