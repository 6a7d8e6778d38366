"""PUT/GET /api/v1/recipients/{user_id} and its devices."""

import pytest
from rest_framework.test import APIClient

from config.sharding import shard_for_user
from delivery.models import Device
from notifications.models import Recipient
from notifications.schemas import RecipientResponse
from tests.support.factories import make_key, user_on

pytestmark = pytest.mark.django_db(databases="__all__")


def url(user_id: str, suffix: str = "") -> str:
    return f"/api/v1/recipients/{user_id}{suffix}"


def test_put_creates_then_replaces(api, shards):
    user = user_on(shards[1], prefix="user@org")
    created = api.put(url(user), {"email": "a@example.com", "phone": "+1 415 555 0100", "timezone": "Europe/Paris"}, format="json")
    assert created.status_code == 201, created.json()
    body = RecipientResponse.model_validate(created.json())
    assert (body.email, body.phone, body.timezone) == ("a@example.com", "+14155550100", "Europe/Paris")
    assert Recipient.objects.using(shards[1]).filter(user_id=user).exists()
    assert not Recipient.objects.using(shards[0]).filter(user_id=user).exists()

    replaced = api.put(url(user), {"email": "b@example.com"}, format="json")
    assert replaced.status_code == 200
    assert (replaced.json()["email"], replaced.json()["phone"]) == ("b@example.com", None)
    assert api.get(url(user)).json()["email"] == "b@example.com"


def test_a_new_address_clears_the_bounce_flag(api, shards):
    user = user_on(shards[0])
    api.put(url(user), {"email": "old@example.com"}, format="json")
    Recipient.objects.for_user(user).filter(user_id=user).update(email_bounced=True)
    assert api.put(url(user), {"email": "old@example.com"}, format="json").json()["email_bounced"] is True
    assert api.put(url(user), {"email": "new@example.com"}, format="json").json()["email_bounced"] is False


def test_unknown_recipient_is_404(api):
    response = api.get(url("nobody"))
    assert response.status_code == 404
    assert response.json()["message"] == "no such recipient"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "555"}, "phone"),
        ({"locale": "english please"}, "locale"),
        ({"timezone": "Nowhere/Town"}, "timezone"),
        ({"nickname": "x"}, "nickname"),
        ({"email_verified": "maybe"}, "email_verified"),
    ],
)
def test_bad_recipient_fields(api, body, field):
    response = api.put(url("someone"), body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert not Recipient.objects.for_user("someone").exists()


def test_malformed_user_id_in_path(api):
    response = api.put(url("bad%20id"), {"email": "a@example.com"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "user_id"


def test_devices_register_refresh_list_and_remove(api, shards):
    user = user_on(shards[1])
    first = api.post(url(user, "/devices"), {"platform": "ios", "token": "tok-123456789"}, format="json")
    assert first.status_code == 201
    assert first.json()["token_preview"] == "…456789"
    again = api.post(url(user, "/devices"), {"platform": "ios", "token": "tok-123456789"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert Device.objects.using(shard_for_user(user)).filter(user_id=user).count() == 1

    listed = api.get(url(user, "/devices")).json()["devices"]
    assert [d["platform"] for d in listed] == ["ios"]
    assert "tok-123456789" not in str(api.get(url(user, "/devices")).content)

    gone = api.delete(url(user, "/devices?token=tok-123456789"))
    assert gone.status_code == 204
    assert api.delete(url(user, "/devices"), {"token": "tok-123456789"}, format="json").status_code == 404
    assert not Device.objects.using(shard_for_user(user)).exists()


def test_device_validation(api):
    response = api.post(url("u1", "/devices"), {"platform": "blackberry", "token": "t"}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "platform"
    response = api.delete(url("u1", "/devices"), {}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "token"
    response = api.post(url("u1", "/devices"), {"platform": "ios", "token": "has space"}, format="json")
    assert response.status_code == 400
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [("token", "invalid_token")]
    assert "printable" in response.json()["message"]


def test_recipient_endpoints_need_the_recipients_scope(demo_catalog):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(scopes=['send', 'status'])}")
    assert client.get(url("u1")).status_code == 403
    assert client.put(url("u1"), {}, format="json").status_code == 403
    assert client.post(url("u1", "/devices"), {"platform": "ios", "token": "t"}, format="json").status_code == 403


@pytest.mark.parametrize("token", ["tok\x00en", "tok\nen", "   ", "tab\there", "x" * 2049])
def test_device_tokens_with_control_characters_or_blank_are_refused(api, token):
    response = api.post(url("u1", "/devices"), {"platform": "android", "token": token}, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["errors"][0]["field"] == "token"
    assert not any(Device.objects.using(alias).exists() for alias in ("shard_0", "shard_1"))


def test_a_token_registered_for_another_user_leaves_the_first_one(api, shards):
    """A phone that changes hands: its token stops reaching the previous owner, on any shard."""
    first, second = user_on(shards[0]), user_on(shards[1])
    assert api.post(url(first, "/devices"), {"platform": "ios", "token": "shared-token-1"}, format="json").status_code == 201
    assert api.post(url(second, "/devices"), {"platform": "ios", "token": "shared-token-1"}, format="json").status_code == 201
    (old,) = api.get(url(first, "/devices")).json()["devices"]
    assert (old["active"], old["deactivated_reason"]) == (False, "moved_to_another_user")
    (new,) = api.get(url(second, "/devices")).json()["devices"]
    assert (new["active"], new["deactivated_reason"]) == (True, None)
    # Back to the first user: it is active there again and leaves the second.
    assert api.post(url(first, "/devices"), {"platform": "ios", "token": "shared-token-1"}, format="json").status_code == 200
    assert api.get(url(first, "/devices")).json()["devices"][0]["active"] is True
    assert api.get(url(second, "/devices")).json()["devices"][0]["active"] is False


def test_what_get_returns_put_accepts(api, shards):
    user = user_on(shards[0])
    assert api.put(url(user, ""), {"email": "a@example.com"}, format="json").status_code == 201
    document = api.get(url(user, "")).json()
    assert (document["phone"], document["locale"], document["timezone"]) == (None, None, None)
    again = api.put(url(user, ""), document, format="json")
    assert again.status_code == 200, again.json()
    assert {k: v for k, v in again.json().items() if k != "updated_at"} == {
        k: v for k, v in document.items() if k != "updated_at"
    }
    for cleared in ("", None):
        response = api.put(url(user, ""), dict(document, phone=cleared, locale=cleared), format="json")
        assert response.status_code == 200 and response.json()["phone"] is None
    mismatch = api.put(url(user, ""), dict(document, user_id="someone-else"), format="json")
    assert mismatch.status_code == 400 and mismatch.json()["errors"][0]["field"] == "user_id"
