"""SMS through the real Twilio SDK against the fake provider server."""

from __future__ import annotations

import base64
import logging

import pytest
from django.test import override_settings
from django.utils import timezone

from delivery.providers.twilio import segments
from delivery.services.dispatch import deliver_batch
from notifications.models import Recipient
from tests.fakes import twilio as fake
from tests.fakes.server import Reply
from tests.support.factories import make_delivery, make_recipient, reload, user_on

pytestmark = pytest.mark.django_db(databases="__all__")

SID = "AC" + "0" * 32
TOKEN = "twilio-auth-token-never-logged"
PHONE = "+14155550123"


@pytest.fixture
def twilio(fakes, caplog):
    caplog.set_level(logging.DEBUG)
    with override_settings(
        NOTIFY_PROVIDERS={"sms": ["twilio"]},
        TWILIO_ACCOUNT_SID=SID,
        TWILIO_AUTH_TOKEN=TOKEN,
        TWILIO_FROM="+15005550006",
        TWILIO_API_BASE_URL=fakes.url,
        PUBLIC_BASE_URL="https://notify.example.org",
    ):
        yield fakes
    assert TOKEN not in caplog.text
    assert PHONE not in caplog.text and PHONE[1:] not in caplog.text


def sms(alias: str, body: str = "Your code is 1234", *, user_id: str | None = None, address: str = PHONE):
    return make_delivery(alias, "sms", user_id=user_id or user_on(alias), payload={"body": body}, address=address)


def test_a_message_is_sent_as_the_sdk_posts_it_with_the_status_callback(shards, twilio):
    delivery = sms(shards[0])

    assert deliver_batch([delivery.id]).outcomes == {"sent": 1}

    [request] = twilio.calls(fake.MESSAGES)
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form() == {
        "To": [PHONE],
        "From": ["+15005550006"],
        "Body": ["Your code is 1234"],
        "StatusCallback": [f"https://notify.example.org/webhooks/twilio/status?d={delivery.id}"],
    }
    sent = reload(delivery)
    assert (sent.status, sent.provider) == ("sent", "twilio")
    assert sent.provider_message_id.startswith("SM")
    assert sent.provider_details == {"encoding": "GSM-7", "segments": 1}


def test_segments_and_price_are_recorded_when_twilio_reports_them(shards, twilio):
    delivery = sms(shards[1], "Votre colis est arrivé 📦 " * 4)
    twilio.script(fake.MESSAGES, fake.created_with_price("-0.0158", "2"))
    deliver_batch([delivery.id])
    assert reload(delivery).provider_details == {
        "encoding": "UCS-2",
        "segments": 2,
        "price": "0.0158",
        "price_unit": "USD",
    }


def test_a_messaging_service_sends_instead_of_a_number(shards, twilio):
    delivery = sms(shards[0])
    with override_settings(TWILIO_FROM="MG" + "1" * 32):
        deliver_batch([delivery.id])
    form = twilio.calls(fake.MESSAGES)[0].form()
    assert form["MessagingServiceSid"] == ["MG" + "1" * 32] and "From" not in form


@pytest.mark.parametrize(
    ("code", "reason"), [(21211, "address_rejected"), (21614, "phone_unreachable"), (21610, "phone_unreachable")]
)
def test_a_refused_number_fails_and_flags_the_recipient(shards, twilio, code, reason):
    user_id = user_on(shards[0])
    make_recipient(user_id, phone=PHONE)
    delivery = sms(shards[0], user_id=user_id)
    twilio.script(fake.MESSAGES, fake.error(400, code, "The 'To' number is not valid."))

    deliver_batch([delivery.id])

    failed = reload(delivery)
    assert (failed.status, failed.reason) == ("failed", reason)
    assert Recipient.objects.for_user(user_id).get(user_id=user_id).phone_unreachable is True


def test_a_number_that_is_not_e164_is_refused_without_a_request(shards, twilio):
    delivery = sms(shards[1], address="0612345678")
    deliver_batch([delivery.id])
    assert (reload(delivery).status, reload(delivery).reason) == ("failed", "address_rejected")
    assert twilio.calls(fake.MESSAGES) == []


def test_429_waits_at_least_its_retry_after(shards, twilio):
    delivery = sms(shards[0])
    twilio.script(fake.MESSAGES, fake.error(429, 20429, "Too Many Requests", {"Retry-After": "400"}))
    before = timezone.now()
    deliver_batch([delivery.id])
    retried = reload(delivery)
    assert (retried.status, retried.reason) == ("retrying", "rate_limited")
    assert (retried.next_attempt_at - before).total_seconds() >= 400


@pytest.mark.parametrize(
    ("reply", "status", "reason"),
    [
        (fake.error(500, 20500, "Internal Server Error"), "retrying", "provider_unavailable"),
        (fake.error(503, 20503, "Service Unavailable"), "retrying", "provider_unavailable"),
        (fake.error(401, 20003, "Authenticate"), "failed", "provider_auth_failed"),
        (
            fake.error(400, 21617, "The concatenated message body exceeds the 1600 character limit"),
            "failed",
            "rejected_by_provider",
        ),
    ],
)
def test_provider_answers_become_outcomes(shards, twilio, reply, status, reason):
    delivery = sms(shards[1])
    twilio.script(fake.MESSAGES, reply)
    deliver_batch([delivery.id])
    outcome = reload(delivery)
    assert (outcome.status, outcome.reason) == (status, reason)


def test_a_hung_provider_times_out_and_is_retried(shards, twilio):
    delivery = sms(shards[0])
    twilio.script(fake.MESSAGES, Reply(201, {"sid": "SMlate"}, hang_seconds=1.5))
    with override_settings(PROVIDER_TIMEOUT_SECONDS=0.5):
        deliver_batch([delivery.id])
    assert (reload(delivery).status, reload(delivery).reason) == ("retrying", "provider_timeout")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("€" * 80, ("GSM-7", 1)),  # an extension character counts twice
        ("€" * 81, ("GSM-7", 2)),
        ("é" * 160, ("GSM-7", 1)),
        ("ç" * 70, ("UCS-2", 1)),  # lower-case ç is not in GSM-7
        ("ç" * 71, ("UCS-2", 2)),
        ("📦" * 35, ("UCS-2", 1)),  # two UTF-16 units each
        ("📦" * 36, ("UCS-2", 2)),
    ],
)
def test_segment_count(text, expected):
    assert segments(text) == expected


def test_the_admin_shows_what_twilio_reported(shards, twilio, staff):
    delivery = sms(shards[1])
    twilio.script(fake.MESSAGES, fake.created_with_price("-0.0079", "1"))
    deliver_batch([delivery.id])
    page = staff.get(f"/admin/delivery/delivery/{delivery.id}/change/")
    assert page.status_code == 200
    assert "0.0079" in page.content.decode() and "GSM-7" in page.content.decode()
