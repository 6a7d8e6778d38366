"""Signed provider webhooks: SendGrid's event webhook and Twilio's status callback, over HTTP
(Django's test client), signed with the providers' own schemes and helpers."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from delivery.models import Delivery, DeliveryStatus
from delivery.services.dispatch import deliver_batch
from delivery.services.provider_events import EventKind, next_status
from delivery.services.provider_webhooks import twilio_status_callback_url
from delivery.signals import ADDRESS_REJECTED, PHONE_UNREACHABLE, address_rejected, contact_opted_out
from notifications.models import Recipient
from notifications.services.recipients import clean_contact, put_recipient
from tests.support.factories import make_delivery, make_recipient, reload, send_body, user_on
from tests.support.webhooks import (
    SENDGRID_PATH,
    SendGridSigner,
    post_sendgrid,
    post_twilio,
    sendgrid_event,
)

pytestmark = pytest.mark.django_db(databases="__all__")

BASE_URL = "https://notify.example.com"
TWILIO_TOKEN = "twilio-test-auth-token"
ROW = (
    "status",
    "reason",
    "last_error",
    "sent_at",
    "delivered_at",
    "opened_at",
    "clicked_at",
    "provider_details",
    "updated_at",
)


@pytest.fixture
def signer(settings) -> SendGridSigner:
    signer = SendGridSigner.generate()
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = signer.public_key
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.PUBLIC_BASE_URL = BASE_URL
    return signer


@pytest.fixture
def signals():
    """What delivery told the other apps, as (signal name, kwargs)."""
    seen: list[tuple[str, dict]] = []

    def rejected(sender, **kwargs):
        seen.append(("address_rejected", {k: v for k, v in kwargs.items() if k != "signal"}))

    def opted_out(sender, **kwargs):
        seen.append(("contact_opted_out", {k: v for k, v in kwargs.items() if k != "signal"}))

    address_rejected.connect(rejected)
    contact_opted_out.connect(opted_out)
    yield seen
    address_rejected.disconnect(rejected)
    contact_opted_out.disconnect(opted_out)


def email_delivery(alias: str, status: str = DeliveryStatus.SENT) -> Delivery:
    """An email delivery to its user's current address (sent by the worker, unless ``status``)."""
    user = user_on(alias)
    make_recipient(user)
    sent_at = timezone.now() if status == DeliveryStatus.SENT else None
    return make_delivery(alias, "email", user_id=user, status=status, address=f"{user}@example.com", sent_at=sent_at)


def sms_delivery(alias: str, status: str = DeliveryStatus.SENT) -> Delivery:
    user = user_on(alias)
    make_recipient(user)
    sent_at = timezone.now() if status == DeliveryStatus.SENT else None
    return make_delivery(alias, "sms", user_id=user, status=status, address="+14155550123", sent_at=sent_at)


def row(delivery: Delivery) -> dict:
    fresh = reload(delivery)
    return {name: getattr(fresh, name) for name in ROW}


def twilio(delivery_id, status: str, **params):
    return post_twilio(
        TWILIO_TOKEN,
        BASE_URL,
        urlencode({"d": str(delivery_id)}),
        {"MessageSid": "SM" + "0" * 32, "MessageStatus": status, "AccountSid": "AC" + "1" * 32, **params},
    )


# --- SendGrid ------------------------------------------------------------------------------


def test_signed_events_move_a_delivery_forward_and_record_when(signer, shards):
    delivery = email_delivery(shards[0])
    at = int(time.time()) - 60
    response = post_sendgrid(
        signer, [sendgrid_event(delivery.id, "processed", at=at - 5), sendgrid_event(delivery.id, "delivered", at=at)]
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"received": 2, "unchanged": 1, "applied": 1}  # processed: sent already
    stored = reload(delivery)
    assert stored.status == "delivered" and int(stored.delivered_at.timestamp()) == at


def test_open_and_click_after_delivered(signer, shards):
    delivery = email_delivery(shards[1])
    post_sendgrid(signer, [sendgrid_event(delivery.id, "delivered")])
    post_sendgrid(signer, [sendgrid_event(delivery.id, "open")])
    assert reload(delivery).status == "opened"
    post_sendgrid(signer, [sendgrid_event(delivery.id, "click", url="https://example.com/x")])
    clicked = reload(delivery)
    assert clicked.status == "clicked"
    assert clicked.delivered_at and clicked.opened_at and clicked.clicked_at


def test_out_of_order_events_never_move_a_delivery_back(signer, shards):
    delivery = email_delivery(shards[0])
    now = int(time.time())
    # Delivered first, then the processed that preceded it: it stays delivered.
    post_sendgrid(signer, [sendgrid_event(delivery.id, "delivered", at=now - 10)])
    assert post_sendgrid(signer, [sendgrid_event(delivery.id, "processed", at=now - 20)]).json()["unchanged"] == 1
    assert reload(delivery).status == "delivered"
    # An open before its delivered: opened, and the late delivered only fills its time.
    other = email_delivery(shards[1])
    post_sendgrid(signer, [sendgrid_event(other.id, "open", at=now - 5)])
    post_sendgrid(signer, [sendgrid_event(other.id, "delivered", at=now - 8)])
    stored = reload(other)
    assert (stored.status, int(stored.delivered_at.timestamp()), int(stored.opened_at.timestamp())) == (
        "opened", now - 8, now - 5
    )  # fmt: skip
    # A bounce after delivery does not undo it either.
    post_sendgrid(signer, [sendgrid_event(delivery.id, "bounce", type="bounce", status="5.1.1")])
    assert reload(delivery).status == "delivered"


def test_a_replayed_batch_changes_nothing(signer, shards):
    delivery = email_delivery(shards[0])
    batch = [sendgrid_event(delivery.id, "processed"), sendgrid_event(delivery.id, "delivered")]
    assert post_sendgrid(signer, batch).json() == {"received": 2, "unchanged": 1, "applied": 1}
    before = row(delivery)
    assert post_sendgrid(signer, batch).json() == {"received": 2, "unchanged": 2}
    assert row(delivery) == before


def test_a_bounce_marks_the_delivery_and_flags_the_address_once(signer, shards, signals):
    delivery = email_delivery(shards[1])
    bounce = [sendgrid_event(delivery.id, "bounce", type="bounce", status="5.1.1", reason="550 no such user x@y.z")]
    assert post_sendgrid(signer, bounce).status_code == 200
    stored = reload(delivery)
    assert (stored.status, stored.reason) == ("bounced", "bounce")
    assert stored.last_error == "bounced by the receiving mail server (5.1.1)"  # the server's text may hold the address
    assert Recipient.objects.for_user(delivery.user_id).get(user_id=delivery.user_id).email_bounced is True
    assert signals == [
        ("address_rejected", {"channel": "email", "user_id": delivery.user_id, "reason": ADDRESS_REJECTED,
                              "address": delivery.address})
    ]  # fmt: skip
    # The user changes address (clearing the flag); the provider's retry of the old bounce
    # must not flag the new one.
    put_recipient(delivery.user_id, clean_contact({"email": "new-address@example.com"}))
    post_sendgrid(signer, bounce)
    assert Recipient.objects.for_user(delivery.user_id).get(user_id=delivery.user_id).email_bounced is False
    assert len(signals) == 1


def test_a_blocked_bounce_says_nothing_about_the_address(signer, shards, signals):
    delivery = email_delivery(shards[0])
    post_sendgrid(signer, [sendgrid_event(delivery.id, "bounce", type="blocked", status="4.7.1")])
    assert (reload(delivery).status, reload(delivery).reason) == ("bounced", "blocked")
    assert signals == []
    assert Recipient.objects.for_user(delivery.user_id).get(user_id=delivery.user_id).email_bounced is False


def test_dropped_invalid_address_fails_and_flags_it(signer, shards, signals):
    delivery = email_delivery(shards[1])
    post_sendgrid(signer, [sendgrid_event(delivery.id, "dropped", reason="Invalid")])
    stored = reload(delivery)
    assert (stored.status, stored.reason, stored.last_error) == ("failed", "dropped", "dropped by SendGrid: invalid")
    assert [name for name, _ in signals] == ["address_rejected"]
    assert Recipient.objects.for_user(delivery.user_id).get(user_id=delivery.user_id).email_bounced is True


def test_spam_reports_and_unsubscribes_are_signalled_once(signer, shards, signals):
    delivery = email_delivery(shards[0])
    post_sendgrid(signer, [sendgrid_event(delivery.id, "delivered"), sendgrid_event(delivery.id, "spamreport")])
    post_sendgrid(signer, [sendgrid_event(delivery.id, "spamreport")])
    other = email_delivery(shards[1])
    post_sendgrid(signer, [sendgrid_event(other.id, "unsubscribe"), sendgrid_event(other.id, "deferred")])
    assert signals == [
        ("contact_opted_out", {"channel": "email", "user_id": delivery.user_id, "reason": "spamreport"}),
        ("contact_opted_out", {"channel": "email", "user_id": other.user_id, "reason": "unsubscribe"}),
    ]
    assert reload(delivery).status == "delivered" and reload(delivery).provider_details == {"opted_out": "spamreport"}
    assert reload(other).status == "sent"


@pytest.mark.parametrize(
    "forgery",
    [
        "unsigned",
        "other_key",
        "tampered_body",
        "stale_timestamp",
        "future_timestamp",
        "garbage_signature",
        "no_key_set",
    ],
)
def test_unsigned_or_forged_batches_are_refused_and_change_nothing(signer, shards, settings, forgery):
    delivery = email_delivery(shards[0])
    before = row(delivery)
    payload = json.dumps([sendgrid_event(delivery.id, "delivered")])
    if forgery == "unsigned":
        response = post_sendgrid(None, payload)
    elif forgery == "other_key":
        response = post_sendgrid(SendGridSigner.generate(), payload)
    elif forgery == "tampered_body":
        # A genuine signature of another batch, sent with this one.
        response = _post_with(payload, signer.headers(json.dumps([sendgrid_event(delivery.id, "processed")])))
    elif forgery == "stale_timestamp":
        response = post_sendgrid(signer, payload, timestamp=int(time.time()) - 301)
    elif forgery == "future_timestamp":
        response = post_sendgrid(signer, payload, timestamp=int(time.time()) + 301)
    elif forgery == "garbage_signature":
        response = _post_with(payload, {**signer.headers(payload), "X-Twilio-Email-Event-Webhook-Signature": "%%%"})
    else:
        settings.SENDGRID_WEBHOOK_PUBLIC_KEY = ""
        response = post_sendgrid(signer, payload)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert row(delivery) == before


def _post_with(payload: str, headers: dict):
    from django.test import Client

    return Client().post(SENDGRID_PATH, data=payload, content_type="application/json", headers=headers)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not json", "the body is not JSON"),
        ('{"event": "delivered"}', "the body must be a JSON array of events"),
        ("[1]", "[0]: each event must be an object"),
        ('[{"event": "open", "timestamp": 1}, {"timestamp": 1}]', "[1].event: is required"),
        ('[{"event": "open", "timestamp": "yesterday"}]', "[0].timestamp: must be a unix time"),
    ],
)
def test_a_signed_but_malformed_batch_is_a_400_naming_the_problem(signer, payload, message):
    response = post_sendgrid(signer, payload)
    assert response.status_code == 400
    assert response.json()["message"].startswith(message)


def test_events_about_unknown_or_foreign_mail_are_acknowledged_and_counted(signer, shards):
    from config.sharding import new_id_for_user

    ours = email_delivery(shards[0])
    sms = sms_delivery(shards[1])
    events = [
        sendgrid_event(new_id_for_user("nobody"), "delivered"),  # deleted, or another environment's
        {"event": "delivered", "timestamp": int(time.time()), "email": "a@b.c"},  # sent by something else
        sendgrid_event("not-a-uuid", "delivered"),
        sendgrid_event(ours.id, "group_resubscribe"),  # a type we do not track
        sendgrid_event(sms.id, "delivered"),  # not an email delivery
        sendgrid_event(ours.id, "delivered"),
    ]
    response = post_sendgrid(signer, events)
    assert response.status_code == 200
    assert response.json() == {"received": 6, "unknown": 1, "skipped": 3, "mismatched": 1, "applied": 1}
    assert reload(sms).status == "sent"


def test_body_limits_and_methods(signer, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    response = post_sendgrid(signer, [sendgrid_event("x", "delivered")] * 3)
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"
    from django.test import Client

    chunked = Client().post(SENDGRID_PATH, data="[]", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked")
    assert chunked.status_code == 411
    assert Client().get(SENDGRID_PATH).status_code == 405


def test_the_status_api_shows_what_the_provider_reported(signer, api, shards):
    user = user_on(shards[1])
    make_recipient(user)
    response = api.post("/api/v1/notifications", send_body(user, channels=["email"]), format="json")
    notification_id = response.json()["id"]
    email = Delivery.objects.using(shards[1]).get(notification_id=notification_id, channel="email")
    deliver_batch([email.id])
    post_sendgrid(signer, [sendgrid_event(email.id, "delivered"), sendgrid_event(email.id, "open")])
    body = api.get(f"/api/v1/notifications/{notification_id}").json()
    channel = body["channels"][0]
    assert (body["status"], channel["status"]) == ("sent", "opened")
    assert channel["delivered_at"] and channel["opened_at"] and channel["clicked_at"] is None
    post_sendgrid(signer, [sendgrid_event(email.id, "bounce", type="bounce")])  # too late: stays opened
    assert api.get(f"/api/v1/notifications/{notification_id}").json()["channels"][0]["status"] == "opened"


def test_a_webhook_faster_than_the_providers_answer_is_kept(signer, shards, scripted):
    """The provider reports delivery while our worker still waits for its answer: the
    worker's "sent" must not overwrite "delivered"."""
    delivery = email_delivery(shards[0], status=DeliveryStatus.QUEUED)
    scripted.during_send.append(lambda: post_sendgrid(signer, [sendgrid_event(delivery.id, "delivered")]))
    assert deliver_batch([delivery.id]).outcomes == {"sent": 1}
    stored = reload(delivery)
    assert (stored.status, stored.lease_token, stored.provider) == ("delivered", None, "scripted")
    assert stored.sent_at is not None and stored.delivered_at is not None


# --- Twilio --------------------------------------------------------------------------------


def test_twilio_callbacks_move_an_sms_forward_and_record_the_price(signer, shards):
    delivery = sms_delivery(shards[0], status=DeliveryStatus.SENT)
    assert twilio(delivery.id, "queued").json() == {"received": 1, "unchanged": 1}  # sent already
    response = twilio(delivery.id, "delivered", Price="-0.00750", PriceUnit="USD")
    assert response.status_code == 200 and response.json()["applied"] == 1
    stored = reload(delivery)
    assert stored.status == "delivered" and stored.delivered_at is not None
    assert stored.provider_details == {"price": "-0.00750", "price_unit": "USD"}
    # A late "sent" (callbacks are not ordered) leaves it delivered; a replay changes nothing.
    before = row(delivery)
    assert twilio(delivery.id, "sent").json() == {"received": 1, "unchanged": 1}
    assert twilio(delivery.id, "delivered", Price="-0.00750", PriceUnit="USD").json() == {"received": 1, "unchanged": 1}
    assert row(delivery) == before


@pytest.mark.parametrize(
    ("code", "problem"), [("30003", PHONE_UNREACHABLE), ("30005", ADDRESS_REJECTED), ("30006", PHONE_UNREACHABLE)]
)
def test_undeliverable_numbers_fail_the_sms_and_are_signalled(signer, shards, signals, code, problem):
    delivery = sms_delivery(shards[1])
    assert twilio(delivery.id, "undelivered", ErrorCode=code).status_code == 200
    stored = reload(delivery)
    assert (stored.status, stored.reason, stored.last_error) == (
        "failed",
        "undelivered",
        f"Twilio: undelivered (error {code})",
    )
    assert signals == [
        (
            "address_rejected",
            {"channel": "sms", "user_id": delivery.user_id, "reason": problem, "address": "+14155550123"},
        )
    ]
    twilio(delivery.id, "failed", ErrorCode=code)  # again, differently worded: nothing more
    assert len(signals) == 1 and reload(delivery).reason == "undelivered"


def test_a_carrier_error_not_about_the_number_flags_nothing(signer, shards, signals):
    delivery = sms_delivery(shards[0])
    twilio(delivery.id, "failed", ErrorCode="30007")  # carrier filtering
    assert reload(delivery).status == "failed" and signals == []


def test_forged_twilio_callbacks_are_refused_and_change_nothing(signer, shards):
    delivery = sms_delivery(shards[0])
    before = row(delivery)
    query = urlencode({"d": str(delivery.id)})
    params = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    assert post_twilio(None, BASE_URL, query, params).status_code == 403  # unsigned
    forged = post_twilio("not-our-auth-token", BASE_URL, query, params)
    assert forged.status_code == 403 and forged.json()["code"] == "forbidden"
    # Signed for the host the request claims (a Host header anyone can send), not our public URL.
    assert post_twilio(TWILIO_TOKEN, "http://testserver", query, params).status_code == 403
    # A genuine signature for another delivery, replayed with this delivery's id.
    other = urlencode({"d": str(sms_delivery(shards[0]).id)})
    assert (
        post_twilio(
            TWILIO_TOKEN, BASE_URL, query, params, signed_url=f"{BASE_URL}/webhooks/twilio/status?{other}"
        ).status_code
        == 403
    )
    assert row(delivery) == before


def test_signed_but_malformed_twilio_callbacks_name_the_problem(signer, shards):
    delivery = sms_delivery(shards[0])
    assert post_twilio(TWILIO_TOKEN, BASE_URL, "", {"MessageStatus": "sent"}).json()["message"].startswith("d:")
    missing = post_twilio(TWILIO_TOKEN, BASE_URL, urlencode({"d": str(delivery.id)}), {"MessageSid": "SM1"})
    assert missing.status_code == 400 and missing.json()["message"] == "MessageStatus: is required"
    assert twilio(delivery.id, "delivered", Price="free").json()["message"] == "Price: must be a decimal number"
    assert twilio(delivery.id, "canceled").json() == {"received": 1, "skipped": 1}
    assert reload(delivery).status == "sent"


def test_the_status_callback_url_names_the_delivery():
    from django.test import override_settings

    with override_settings(PUBLIC_BASE_URL="https://notify.example.com"):
        url = twilio_status_callback_url("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    assert url == "https://notify.example.com/webhooks/twilio/status?d=0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


# --- The transition table itself --------------------------------------------------------------


def test_events_only_ever_move_a_delivery_forward():
    order = ["sent", "delivered", "opened", "clicked"]
    for i, current in enumerate(order):
        for j, kind in enumerate([EventKind.ACCEPTED, EventKind.DELIVERED, EventKind.OPENED, EventKind.CLICKED]):
            assert next_status(current, kind) == (order[j] if j > i else None)
    for current in ("queued", "sending", "retrying", "dead_lettered"):
        assert next_status(current, EventKind.DELIVERED) == "delivered"
        assert next_status(current, EventKind.BOUNCED) == "bounced"
    assert next_status("sent", EventKind.BOUNCED) == "bounced"
    for final in ("bounced", "failed", "skipped"):
        assert all(next_status(final, kind) is None for kind in EventKind)
    assert next_status("delivered", EventKind.FAILED) is None


def test_no_address_reaches_a_log_line(signer, shards, caplog):
    caplog.set_level("DEBUG")
    delivery = email_delivery(shards[0])
    sms = sms_delivery(shards[1])
    post_sendgrid(
        signer, [sendgrid_event(delivery.id, "bounce", type="bounce", reason=f"550 {delivery.address} unknown")]
    )
    post_sendgrid(signer, "not json")
    twilio(sms.id, "undelivered", ErrorCode="30003", To="+14155550123", From="+14155550100")
    post_twilio("forged", BASE_URL, urlencode({"d": str(sms.id)}), {"To": "+14155550123", "MessageStatus": "sent"})
    assert caplog.records, "the webhooks log what they did"
    for record in caplog.records:
        line = record.getMessage()
        assert "@" not in line and "415555" not in line and str(delivery.id) not in line, line
