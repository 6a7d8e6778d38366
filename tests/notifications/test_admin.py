"""The admin: operators find a user's rows on whatever shard holds them."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from delivery.models import Delivery
from delivery.services.dispatch import deliver_batch
from notifications.models import ApiClient, Notification
from notifications.services.api_keys import hash_key
from tests.support.factories import make_recipient, send_body, user_on
from tests.support.providers import ScriptedProvider

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def admin_client():
    get_user_model().objects.create_superuser("root", "", "pw")
    client = Client()
    client.login(username="root", password="pw")
    return client


def send(api, user, **overrides) -> str:
    return api.post("/api/v1/notifications", send_body(user, **overrides), format="json").json()["id"]


def test_changelists_show_one_shard_at_a_time(admin_client, shards):
    on_0, on_1 = user_on(shards[0], "zed"), user_on(shards[1], "yan")
    make_recipient(on_0)
    make_recipient(on_1)
    first = admin_client.get("/admin/notifications/recipient/").content.decode()
    assert on_0 in first and on_1 not in first
    second = admin_client.get(f"/admin/notifications/recipient/?shard={shards[1]}").content.decode()
    assert on_1 in second and on_0 not in second


def test_searching_a_user_id_goes_to_that_users_shard(admin_client, api, shards):
    user = user_on(shards[1], "findme")
    other = user_on(shards[1], "other")
    mine = send(api, user, channels=["inapp"])
    send(api, other, channels=["inapp"])
    page = admin_client.get(f"/admin/notifications/notification/?q={user}").content.decode()
    assert mine in page and other not in page
    deliveries = admin_client.get(f"/admin/delivery/delivery/?q={user}").content.decode()
    assert str(Delivery.objects.using(shards[1]).get(notification_id=mine).id) in deliveries


def test_searching_a_notification_id_finds_its_deliveries(admin_client, api, shards):
    notification_id = send(api, user_on(shards[1]), channels=["inapp", "push"])
    page = admin_client.get(f"/admin/delivery/delivery/?q={notification_id}").content.decode()
    for delivery in Delivery.objects.using(shards[1]).filter(notification_id=notification_id):
        assert str(delivery.id) in page


def test_detail_pages_route_by_id(admin_client, api, shards):
    user = user_on(shards[1])
    make_recipient(user)
    notification_id = send(api, user, channels=["email"])
    deliver_batch(Delivery.objects.using(shards[1]).values_list("id", flat=True))
    page = admin_client.get(f"/admin/notifications/notification/{notification_id}/change/")
    assert page.status_code == 200
    assert "email: <strong>sent</strong>" in page.content.decode()
    assert admin_client.get(f"/admin/notifications/recipient/{user}/change/").status_code == 200
    missing = admin_client.get("/admin/notifications/notification/not-an-id/change/")
    assert missing.status_code == 302  # Django's "does not exist" redirect


def test_failed_deliveries_can_be_requeued_from_the_admin(admin_client, api, shards, settings):
    ScriptedProvider.reset()
    ScriptedProvider.script = ["permanent"]
    settings.NOTIFY_PROVIDERS = {**settings.NOTIFY_PROVIDERS, "inapp": "tests.support.providers.ScriptedProvider"}
    notification_id = send(api, user_on(shards[0]), channels=["inapp"])
    deliver_batch(Delivery.objects.using(shards[0]).values_list("id", flat=True))
    delivery = Delivery.objects.using(shards[0]).get(notification_id=notification_id)
    assert delivery.status == "failed"
    response = admin_client.post(
        f"/admin/delivery/delivery/?shard={shards[0]}",
        {"action": "requeue_selected", "_selected_action": [str(delivery.id)]},
        follow=True,
    )
    assert "1 deliveries requeued" in response.content.decode()
    assert Delivery.objects.using(shards[0]).get(id=delivery.id).status == "queued"
    ScriptedProvider.reset()


def test_adding_an_api_client_shows_its_key_once(admin_client, demo_catalog):
    response = admin_client.post(
        "/admin/notifications/apiclient/add/",
        {"name": "orders", "allowed_types": '["order_shipped"]', "scopes": '["send"]', "is_active": "on"},
        follow=True,
    )
    text = response.content.decode()
    assert "shown only now" in text
    key = text.split("store it safely): ")[1].split("<")[0].strip()
    client = ApiClient.objects.get(name="orders")
    assert client.key_hash == hash_key(key)
    assert admin_client.get(f"/admin/notifications/apiclient/{client.pk}/change/").content.decode().count(key) == 0


def test_notifications_are_read_only_in_the_admin(admin_client, api, shards):
    notification_id = send(api, user_on(shards[0]), channels=["inapp"])
    assert admin_client.get("/admin/notifications/notification/add/").status_code == 403
    response = admin_client.post(f"/admin/notifications/notification/{notification_id}/change/", {"priority": "low"})
    assert response.status_code == 403
    assert Notification.objects.using(shards[0]).get(id=notification_id).priority == "normal"


def test_recipients_can_be_added_edited_and_deleted_on_their_shard(admin_client, shards):
    user = user_on(shards[1], "adm")
    response = admin_client.post(
        "/admin/notifications/recipient/add/",
        {"user_id": user, "email": "adm@example.com", "email_verified": "on", "phone": "", "phone_verified": "on",
         "locale": "en", "timezone": "UTC"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    from notifications.models import Recipient

    assert Recipient.objects.using(shards[1]).get(user_id=user).email == "adm@example.com"
    response = admin_client.post(
        f"/admin/notifications/recipient/{user}/change/",
        {"email": "new@example.com", "email_verified": "on", "phone": "", "phone_verified": "on", "locale": "en",
         "timezone": "UTC"},
    )  # fmt: skip
    assert response.status_code == 302
    assert Recipient.objects.using(shards[1]).get(user_id=user).email == "new@example.com"
    assert admin_client.post(f"/admin/notifications/recipient/{user}/delete/", {"post": "yes"}).status_code == 302
    assert not Recipient.objects.using(shards[1]).filter(user_id=user).exists()
