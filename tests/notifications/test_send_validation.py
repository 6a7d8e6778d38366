"""Bad input to the send endpoints: a clear 4xx naming the field, never a 500, nothing written."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from delivery.models import Delivery
from notifications.models import InboxItem, Notification, Recipient
from notifications.schemas import ErrorResponse
from tests.support.factories import send_body

pytestmark = pytest.mark.django_db(databases="__all__")

URL = "/api/v1/notifications"


def nothing_written() -> bool:
    return all(
        not model.objects.using(alias).exists()
        for alias in settings.SHARD_ALIASES
        for model in (Notification, Delivery, InboxItem, Recipient)
    )


def fields_of(response) -> list[str]:
    ErrorResponse.model_validate(response.json())
    return [error["field"] for error in response.json()["errors"]]


def later(**delta) -> str:
    return (timezone.now() + timedelta(**delta)).isoformat()


@pytest.mark.parametrize(
    "change, field, code",
    [
        ({"type": None}, "type", "missing"),
        ({"idempotency_key": None}, "idempotency_key", "missing"),
        ({"user_id": None}, "user_id", "missing_user"),
        ({"bogus": 1}, "bogus", "extra_forbidden"),
        ({"type": "no_such_type"}, "type", "unknown_type"),
        ({"type": "Bad Type!"}, "type", "invalid_type"),
        ({"channels": ["email", "fax"]}, "channels[1]", "literal_error"),
        ({"channels": []}, "channels", "too_short"),
        ({"channels": ["email", "email"]}, "channels", "duplicate_channel"),
        ({"priority": "urgent"}, "priority", "literal_error"),
        ({"user_id": "has space"}, "user_id", "invalid_user_id"),
        ({"user_id": "x" * 65}, "user_id", "invalid_user_id"),
        ({"user_id": 42}, "user_id", "string_type"),
        ({"data": "not an object"}, "data", "dict_type"),
        ({"data": {"blob": "x" * (16 * 1024)}}, "data", "data_too_large"),
        ({"data": {"name": "Ada"}}, "data.order_id", "missing_variable"),
        ({"idempotency_key": ""}, "idempotency_key", "string_too_short"),
        ({"idempotency_key": "k" * 256}, "idempotency_key", "string_too_long"),
        ({"send_at": "2020-01-01T00:00:00Z"}, "send_at", "send_at_past"),
        ({"send_at": "tomorrow"}, "send_at", "datetime_from_date_parsing"),
        ({"send_at": "2030-01-01T00:00:00"}, "send_at", "timezone_aware"),
        ({"recipient": {"user_id": "other"}}, "recipient.user_id", "user_mismatch"),
        ({"recipient": {"user_id": "u1", "email": "nope"}}, "recipient.email", "invalid_email"),
        ({"recipient": {"user_id": "u1", "phone": "12345"}}, "recipient.phone", "invalid_phone"),
        ({"recipient": {"user_id": "u1", "timezone": "Mars/Olympus"}}, "recipient.timezone", "invalid_timezone"),
    ],
)
def test_bad_fields_are_named(api, change, field, code):
    body = send_body("u1")
    for key, value in change.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    response = api.post(URL, body, format="json")
    assert response.status_code == 400, response.json()
    assert field in fields_of(response)
    assert code in [error["code"] for error in response.json()["errors"]]
    assert nothing_written()


def test_send_at_more_than_seven_days_ahead(api):
    response = api.post(URL, send_body("u1", send_at=later(days=7, minutes=5)), format="json")
    assert response.status_code == 400
    assert fields_of(response) == ["send_at"]
    assert api.post(URL, send_body("u1", send_at=later(days=6)), format="json").status_code == 202


def test_a_channel_without_template_is_skipped_whether_asked_for_or_default(api):
    """One rule for template availability: the channel is skipped with reason no_template,
    visible in the answer, whether the request named it or the type defaults to it."""
    from notifications.models import NotificationType
    from templates_app.models import Template

    Template.objects.filter(type_key="promotion", channel="sms").delete()
    promo = {"headline": "Sale", "offer": "20% off"}
    asked = api.post(URL, send_body("u1", type="promotion", channels=["sms", "inapp"], data=promo), format="json")
    assert asked.status_code == 202
    assert {c["channel"]: (c["status"], c["reason"]) for c in asked.json()["channels"]} == {
        "sms": ("skipped", "no_template"), "inapp": ("queued", "")
    }  # fmt: skip
    NotificationType.objects.filter(key="promotion").update(default_channels=["sms", "inapp"])
    from notifications.services import catalog

    catalog.clear()
    by_default = api.post(URL, send_body("u1", type="promotion", data=promo), format="json")
    assert [(c["channel"], c["reason"]) for c in by_default.json()["channels"]] == [("sms", "no_template"), ("inapp", "")]


def test_invalid_json_and_wrong_content_type(api):
    broken = api.generic("POST", URL, '{"user_id": "u1",', content_type="application/json")
    assert broken.status_code == 400
    assert fields_of(broken) == ["body"]
    assert broken.json()["errors"][0]["code"] == "json_invalid"

    not_object = api.generic("POST", URL, "[1, 2]", content_type="application/json")
    assert not_object.status_code == 400

    form = api.post(URL, {"user_id": "u1"})  # multipart
    assert form.status_code == 415
    assert nothing_written()


def test_several_problems_are_all_reported(api):
    response = api.post(URL, {"type": "order_shipped", "priority": "urgent", "extra": True}, format="json")
    assert response.status_code == 400
    assert set(fields_of(response)) >= {"priority", "idempotency_key", "extra"}
    assert "(and" in response.json()["message"]


def test_errors_do_not_echo_submitted_values(api):
    response = api.post(URL, send_body("u1", recipient={"user_id": "u1", "email": "secret-value"}), format="json")
    assert response.status_code == 400
    assert "secret-value" not in response.content.decode()


def test_unknown_api_path_is_a_json_404(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_method_not_allowed_is_json(api):
    response = api.delete(URL)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "a\x00b", "order_id": "1"}, "NUL"),
        ({"name": "Ada", "order_id": "1", "bad\x00key": 1}, "NUL"),
        ({"name": "Ada", "order_id": "1", "ratio": float("nan")}, "finite"),
        ({"name": "Ada", "order_id": "1", "deep": [{"x": float("inf")}]}, "finite"),
    ],
)
def test_values_json_storage_cannot_hold_are_refused(api, data, message):
    import json

    body = json.dumps(send_body("u1", data=data), allow_nan=True)
    response = api.generic("POST", URL, body, content_type="application/json")
    assert response.status_code == 400, response.content
    error = response.json()["errors"][0]
    assert (error["field"], error["code"]) == ("data", "invalid_value")
    assert message in error["message"]
    assert nothing_written()


def test_inline_recipients_need_the_recipients_scope(api, demo_catalog):
    from tests.support.factories import make_key

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(scopes=['send'])}")
    body = send_body(None, recipient={"user_id": "victim", "email": "attacker@example.com"})
    del body["user_id"]
    response = api.post(URL, body, format="json")
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "recipient"
    assert nothing_written()


def test_missing_variables_are_a_400_whatever_the_recipient_can_receive(api, shards):
    """The answer depends on the request alone: a variable only the email template uses is
    required for a user without an email address too."""
    from templates_app.models import Template

    Template.objects.filter(type_key="order_shipped", channel="email").update(subject="Your {{ carrier }} parcel")
    from templates_app.rendering import template_catalog

    template_catalog.clear()
    from tests.support.factories import make_recipient, user_on

    with_email, without_email = user_on(shards[0]), user_on(shards[1])
    make_recipient(with_email)
    make_recipient(without_email, email="")
    for user in (with_email, without_email):
        response = api.post(URL, send_body(user), format="json")
        assert response.status_code == 400, (user, response.json())
        assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [("data.carrier", "missing_variable")]


@pytest.mark.parametrize("value", [None, {"id": 1}, ["a"]])
def test_a_printed_null_object_or_list_is_a_400_naming_it(api, value):
    response = api.post(URL, send_body("u1", data={"name": value, "order_id": "A-1"}), format="json")
    assert response.status_code == 400
    assert {(e["field"], e["code"]) for e in response.json()["errors"]} == {("data.name", "unprintable_value")}
    assert nothing_written()


def test_template_data_cannot_inject_headers_or_links(api, shards):
    from delivery.models import Delivery
    from notifications.models import InboxItem
    from templates_app.models import Template
    from templates_app.rendering import template_catalog
    from tests.support.factories import make_recipient, user_on

    Template.objects.filter(type_key="order_shipped", channel="inapp").update(action_url="/orders/{{ order_id }}")
    template_catalog.clear()
    user = user_on(shards[0])
    make_recipient(user)
    data = {"name": "Ada\r\nBcc: all@example.com", "order_id": "../../admin?x=javascript:alert(1)"}
    response = api.post(URL, send_body(user, data=data), format="json")
    assert response.status_code == 202, response.json()
    email = Delivery.objects.using(shards[0]).get(notification_id=response.json()["id"], channel="email")
    assert "\r" not in email.payload["subject"] and "\n" not in email.payload["subject"]
    inbox = InboxItem.objects.using(shards[0]).get(notification_id=response.json()["id"])
    assert inbox.action_url == "/orders/..%2F..%2Fadmin%3Fx%3Djavascript%3Aalert%281%29"
