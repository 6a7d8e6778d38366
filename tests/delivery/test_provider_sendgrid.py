"""Email through the real SendGrid SDK against the fake provider server."""

from __future__ import annotations

import logging
import time

import pytest
from django.test import override_settings
from django.utils import timezone

from delivery.models import Delivery
from delivery.services.dispatch import deliver_batch
from notifications.models import Recipient
from tests.fakes import sendgrid as fake
from tests.fakes.server import Reply
from tests.support.factories import make_delivery, make_recipient, reload, send_body, user_on

pytestmark = pytest.mark.django_db(databases="__all__")

API_KEY = "SG.test-key-must-never-be-logged"
PAYLOAD = {"subject": "Your order shipped", "text": "It is on its way.", "html": "<p>It is on its way.</p>"}


@pytest.fixture
def sendgrid(fakes, caplog):
    caplog.set_level(logging.DEBUG)
    with override_settings(
        NOTIFY_PROVIDERS={"email": ["sendgrid"]},
        SENDGRID_API_KEY=API_KEY,
        SENDGRID_FROM_EMAIL="notify@example.org",
        SENDGRID_API_HOST=fakes.url,
    ):
        yield fakes
    # Nothing any test here logged may carry the key or an address.
    assert API_KEY not in caplog.text
    assert "@example.com" not in caplog.text


def email(alias: str, *, user_id: str | None = None, payload: dict | None = None, address: str | None = None):
    user_id = user_id or user_on(alias)
    return make_delivery(
        alias, "email", user_id=user_id, payload=payload or PAYLOAD, address=address or f"{user_id}@example.com"
    )


def test_same_content_goes_in_one_request_with_a_personalization_each(shards, sendgrid):
    first = email(shards[0], payload={**PAYLOAD, "headers": {"List-Unsubscribe": "<https://x.test/u/1>"}})
    second = email(shards[0])

    report = deliver_batch([first.id, second.id])

    assert report.outcomes == {"sent": 2}
    [request] = sendgrid.calls(fake.SEND)
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.json() == {
        "personalizations": [
            {
                "to": [{"email": first.address}],
                "custom_args": {"delivery_id": str(first.id)},
                "headers": {"List-Unsubscribe": "<https://x.test/u/1>"},
            },
            {"to": [{"email": second.address}], "custom_args": {"delivery_id": str(second.id)}},
        ],
        "from": {"email": "notify@example.org"},
        "subject": "Your order shipped",
        "content": [
            {"type": "text/plain", "value": "It is on its way."},
            {"type": "text/html", "value": "<p>It is on its way.</p>"},
        ],
    }
    sent = reload(first)
    assert (sent.status, sent.provider) == ("sent", "sendgrid")
    assert sent.provider_message_id.startswith("sg-") and sent.provider_message_id == reload(second).provider_message_id


def test_different_content_goes_in_separate_requests(shards, sendgrid):
    one = email(shards[0])
    other = email(shards[0], payload={"subject": "Other", "text": "Plain only"})
    assert deliver_batch([one.id, other.id]).outcomes == {"sent": 2}
    bodies = sorted((r.json() for r in sendgrid.calls(fake.SEND)), key=lambda b: b["subject"])
    assert [b["subject"] for b in bodies] == ["Other", "Your order shipped"]
    assert bodies[0]["content"] == [{"type": "text/plain", "value": "Plain only"}]


def test_a_header_with_a_line_break_is_refused_without_a_request(shards, sendgrid):
    delivery = email(shards[1], payload={**PAYLOAD, "headers": {"X-Tag": "a\r\nBcc: victim@example.net"}})
    deliver_batch([delivery.id])
    failed = reload(delivery)
    assert (failed.status, failed.reason) == ("failed", "invalid_header")
    assert sendgrid.calls(fake.SEND) == []


def test_a_rejected_address_fails_its_delivery_flags_the_recipient_and_the_rest_is_sent(shards, sendgrid):
    good_user, bad_user = user_on(shards[0]), user_on(shards[0])
    make_recipient(good_user)
    make_recipient(bad_user)
    good, bad = email(shards[0], user_id=good_user), email(shards[0], user_id=bad_user)
    sendgrid.script(fake.SEND, fake.bad_address(1))

    deliver_batch([good.id, bad.id])

    rejected = reload(bad)
    assert (rejected.status, rejected.reason) == ("failed", "address_rejected")
    assert reload(good).status == "sent"
    first, second = sendgrid.calls(fake.SEND)
    assert len(first.json()["personalizations"]) == 2 and len(second.json()["personalizations"]) == 1
    assert Recipient.objects.for_user(bad_user).get(user_id=bad_user).email_bounced is True
    assert Recipient.objects.for_user(good_user).get(user_id=good_user).email_bounced is False


def test_429_waits_at_least_its_retry_after(shards, sendgrid):
    delivery = email(shards[1])
    sendgrid.script(fake.SEND, Reply(429, {"errors": [{"message": "too many requests"}]}, {"Retry-After": "120"}))
    before = timezone.now()
    deliver_batch([delivery.id])
    retried = reload(delivery)
    assert (retried.status, retried.reason) == ("retrying", "rate_limited")
    assert (retried.next_attempt_at - before).total_seconds() >= 120


def test_429_without_retry_after_waits_for_the_rate_limit_reset(shards, sendgrid):
    delivery = email(shards[0])
    reset = int(time.time()) + 300
    sendgrid.script(fake.SEND, Reply(429, {"errors": [{"message": "too many"}]}, {"X-RateLimit-Reset": str(reset)}))
    before = timezone.now()
    deliver_batch([delivery.id])
    wait = (reload(delivery).next_attempt_at - before).total_seconds()
    assert 290 <= wait <= 301


@pytest.mark.parametrize(
    ("reply", "status", "reason"),
    [
        (Reply(500, {"errors": [{"message": "internal"}]}), "retrying", "provider_unavailable"),
        (Reply(503, b""), "retrying", "provider_unavailable"),
        (
            Reply(401, {"errors": [{"message": "The provided authorization grant is invalid"}]}),
            "failed",
            "provider_auth_failed",
        ),
        (
            Reply(400, {"errors": [{"message": "The from address does not match a verified Sender"}]}),
            "failed",
            "rejected_by_provider",
        ),
        (Reply(413, b""), "failed", "payload_too_large"),
    ],
)
def test_provider_answers_become_outcomes(shards, sendgrid, reply, status, reason):
    delivery = email(shards[0])
    sendgrid.script(fake.SEND, reply)
    deliver_batch([delivery.id])
    outcome = reload(delivery)
    assert (outcome.status, outcome.reason) == (status, reason)
    assert str(reply.status) in outcome.last_error


def test_a_hung_provider_times_out_and_is_retried(shards, sendgrid):
    delivery = email(shards[1])
    sendgrid.script(fake.SEND, Reply(202, b"", hang_seconds=1.5))
    with override_settings(PROVIDER_TIMEOUT_SECONDS=0.5):
        deliver_batch([delivery.id])
    retried = reload(delivery)
    assert (retried.status, retried.reason) == ("retrying", "provider_timeout")
    assert Delivery.objects.using(shards[1]).get(id=delivery.id).attempts == 1


def test_missing_credentials_are_named():
    from delivery.providers.sendgrid import SendGridProvider

    with override_settings(SENDGRID_API_KEY="", SENDGRID_FROM_EMAIL=""):
        assert SendGridProvider.configuration_problem() == "set SENDGRID_API_KEY, SENDGRID_FROM_EMAIL"
    with override_settings(SENDGRID_API_KEY="k", SENDGRID_FROM_EMAIL="a@b.c"):
        assert SendGridProvider.configuration_problem() is None


def test_a_bulk_send_through_the_api_reaches_sendgrid_as_one_request(api, shards, sendgrid):
    from delivery.services.dispatch import drain

    users = [user_on(shards[0]) for _ in range(3)]
    for user in users:
        make_recipient(user)
    data = {"name": "there", "order_id": "A-7"}  # the same content for all: one request
    items = [send_body(user, channels=["email"], data=data) for user in users]
    assert api.post("/api/v1/notifications/bulk", {"items": items}, format="json").status_code == 202

    assert drain(shards[0], "email", "normal").outcomes == {"sent": 3}

    [request] = sendgrid.calls(fake.SEND)
    body = request.json()
    assert body["subject"] == "Order A-7 has shipped"
    assert body["content"] == [
        {"type": "text/plain", "value": "Good news there: order A-7 is on its way."},
        {"type": "text/html", "value": "<p>Good news there: order <strong>A-7</strong> is on its way.</p>"},
    ]
    assert sorted(p["to"][0]["email"] for p in body["personalizations"]) == sorted(f"{u}@example.com" for u in users)
    delivery_ids = {p["custom_args"]["delivery_id"] for p in body["personalizations"]}
    stored = Delivery.objects.using(shards[0]).filter(user_id__in=users, channel="email")
    assert delivery_ids == {str(d.id) for d in stored} and {d.status for d in stored} == {"sent"}


def test_a_failing_address_receiver_does_not_undo_the_outcome(shards, sendgrid, caplog):
    from delivery.signals import address_rejected

    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    address_rejected.connect(broken, dispatch_uid="test-broken")
    try:
        delivery = email(shards[1])
        sendgrid.script(fake.SEND, fake.bad_address(0))
        deliver_batch([delivery.id])
    finally:
        address_rejected.disconnect(dispatch_uid="test-broken")
    assert (reload(delivery).status, reload(delivery).reason) == ("failed", "address_rejected")
    assert "broken raised RuntimeError" in caplog.text
