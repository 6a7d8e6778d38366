"""Push through the real firebase-admin SDK against the fake OAuth and FCM endpoints."""

from __future__ import annotations

import logging
from datetime import timedelta

import firebase_admin
import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from firebase_admin import messaging

from delivery.models import Delivery, Device
from delivery.providers import check_configuration
from delivery.providers import fcm as provider
from delivery.services.devices import register_device
from delivery.services.dispatch import deliver_batch
from tests.fakes import google as fake
from tests.fakes.server import Reply
from tests.support.factories import make_delivery, reload, user_on

pytestmark = pytest.mark.django_db(databases="__all__")

PAYLOAD = {"title": "Shipped", "body": "Your order is on its way", "action_url": "https://shop.example.org/o/1"}


@pytest.fixture(scope="session")
def service_account(fake_server, tmp_path_factory):
    return fake.write_service_account(fake_server, tmp_path_factory.mktemp("firebase"))


def _forget_app() -> None:
    try:
        firebase_admin.delete_app(firebase_admin.get_app(provider.APP_NAME))
    except ValueError:
        pass


@pytest.fixture
def fcm(fakes, service_account, monkeypatch, caplog):
    # FCM's endpoint is fixed in the SDK: it reaches the fake as its HTTPS proxy, trusting the
    # fake's CA (requests' own environment variables); OAuth goes to the service account's token_uri.
    monkeypatch.setenv("HTTPS_PROXY", fakes.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fakes.ca_bundle))
    caplog.set_level(logging.DEBUG)
    _forget_app()  # each test's app takes its settings (the timeout)
    with override_settings(NOTIFY_PROVIDERS={"push": ["fcm"]}, FIREBASE_CREDENTIALS=str(service_account)):
        yield fakes
    _forget_app()
    assert "tok-" not in caplog.text  # device tokens never reach a log line


def push(alias: str, *tokens: str, payload: dict | None = None):
    user_id = user_on(alias)
    for i, token in enumerate(tokens):
        register_device(user_id, platform=("android", "ios", "web")[i % 3], token=token)
    return make_delivery(alias, "push", user_id=user_id, payload=payload or PAYLOAD)


def device(user_id: str, token: str) -> Device:
    return Device.objects.for_user(user_id).get(user_id=user_id, token=token)


def test_every_device_gets_the_message_as_the_sdk_sends_it(shards, fcm):
    delivery = push(shards[0], "tok-android-1", "tok-ios-2")

    assert deliver_batch([delivery.id]).outcomes == {"sent": 1}

    sends = fcm.calls(fake.FCM_SEND)
    assert sorted(r.json()["message"]["token"] for r in sends) == ["tok-android-1", "tok-ios-2"]
    request = sends[0]
    assert request.path == f"/v1/projects/{fake.PROJECT}/messages:send"
    assert request.headers["host"] == fake.FCM_HOST
    assert request.headers["authorization"] == f"Bearer {fake.ACCESS_TOKEN}"
    assert request.json()["message"] | {"token": "t"} == {
        "token": "t",
        "notification": {"title": "Shipped", "body": "Your order is on its way"},
        "data": {"delivery_id": str(delivery.id), "action_url": "https://shop.example.org/o/1"},
        "android": {"priority": "normal"},
        "apns": {"headers": {"apns-priority": "5"}},
        "webpush": {"headers": {"Urgency": "normal"}, "fcm_options": {"link": "https://shop.example.org/o/1"}},
    }
    token_request = fcm.calls(fake.TOKEN)[0]
    assert token_request.form()["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    sent = reload(delivery)
    assert (sent.status, sent.provider) == ("sent", "fcm")
    assert sent.provider_message_id.startswith(f"projects/{fake.PROJECT}/messages/")


def test_urgent_priorities_wake_the_device(shards, fcm):
    delivery = push(shards[0], "tok-android-1", payload={"title": "Alert", "action_url": "http://plain.example.org"})
    Delivery.objects.using(shards[0]).filter(id=delivery.id).update(priority="critical")
    deliver_batch([delivery.id])
    message = fcm.calls(fake.FCM_SEND)[0].json()["message"]
    assert message["android"] == {"priority": "high"}
    assert message["apns"] == {"headers": {"apns-priority": "10"}}
    assert message["webpush"] == {"headers": {"Urgency": "high"}}  # FCM takes only HTTPS links
    assert message["notification"] == {"title": "Alert"}


def test_an_unregistered_token_is_deactivated_and_one_success_is_enough(shards, fcm):
    delivery = push(shards[1], "tok-gone-1", "tok-fine-2")
    deliver_batch([delivery.id])
    assert reload(delivery).status == "sent"
    gone = device(delivery.user_id, "tok-gone-1")
    assert (gone.active, gone.deactivated_reason) == (False, "unregistered")
    assert device(delivery.user_id, "tok-fine-2").active is True


def test_every_token_invalid_fails_the_delivery_and_deactivates_them(shards, fcm):
    delivery = push(shards[0], "tok-bad-1", "tok-gone-2")
    deliver_batch([delivery.id])
    failed = reload(delivery)
    assert failed.status == "failed" and failed.reason in {"invalid_token", "unregistered"}
    assert device(delivery.user_id, "tok-bad-1").deactivated_reason == "invalid_token"
    assert device(delivery.user_id, "tok-gone-2").deactivated_reason == "unregistered"


def test_a_user_without_active_devices_is_skipped_without_a_request(shards, fcm):
    delivery = make_delivery(shards[1], "push", payload=PAYLOAD)
    deliver_batch([delivery.id])
    assert (reload(delivery).status, reload(delivery).reason) == ("skipped", "no_devices")
    assert fcm.calls(fake.FCM_SEND) == []


def test_a_payload_over_4_kb_is_refused_before_sending(shards, fcm):
    delivery = push(shards[0], "tok-android-1", payload={"title": "Big", "body": "x" * 4100})
    deliver_batch([delivery.id])
    assert (reload(delivery).status, reload(delivery).reason) == ("failed", "payload_too_large")
    assert fcm.calls(fake.FCM_SEND) == []


def test_429_waits_at_least_its_retry_after(shards, fcm):
    delivery = push(shards[1], "tok-android-1")
    fcm.script(fake.FCM_SEND, fake.fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", {"Retry-After": "60"}))
    before = timezone.now()
    deliver_batch([delivery.id])
    retried = reload(delivery)
    assert (retried.status, retried.reason) == ("retrying", "rate_limited")
    assert (retried.next_attempt_at - before).total_seconds() >= 60


def test_a_5xx_is_retried_by_our_policy_not_by_the_sdk(shards, fcm):
    delivery = push(shards[0], "tok-android-1")
    fcm.script(fake.FCM_SEND, fake.fcm_error(503, "UNAVAILABLE", headers={"Retry-After": "30"}))
    deliver_batch([delivery.id])
    assert (reload(delivery).status, reload(delivery).reason) == ("retrying", "provider_unavailable")
    assert len(fcm.calls(fake.FCM_SEND)) == 1  # the SDK's own retries (and its Retry-After sleep) are off


def test_a_hung_provider_times_out_and_is_retried(shards, fcm):
    delivery = push(shards[1], "tok-android-1")
    fcm.script(fake.FCM_SEND, Reply(200, {"name": "late"}, hang_seconds=1.5))
    with override_settings(PROVIDER_TIMEOUT_SECONDS=0.5):
        deliver_batch([delivery.id])
    assert (reload(delivery).status, reload(delivery).reason) == ("retrying", "provider_timeout")


def test_targets_go_in_chunks_of_at_most_the_sdk_limit(shards, fcm, monkeypatch):
    chunk_sizes = []
    real_send_each = messaging.send_each

    def counting_send_each(messages, *args, **kwargs):
        chunk_sizes.append(len(messages))
        return real_send_each(messages, *args, **kwargs)

    monkeypatch.setattr(messaging, "send_each", counting_send_each)
    monkeypatch.setattr(provider, "CHUNK", 3)
    first = push(shards[0], "tok-a-1", "tok-a-2", "tok-a-3", "tok-a-4")
    second = push(shards[0], "tok-b-1", "tok-b-2", "tok-gone-3")
    assert deliver_batch([first.id, second.id]).outcomes == {"sent": 2}
    assert chunk_sizes == [3, 3, 1]
    assert len(fcm.calls(fake.FCM_SEND)) == 7


def test_failing_devices_are_counted_and_pruned(shards, fcm):
    delivery = push(shards[0], "tok-busy-1", "tok-fine-2")
    deliver_batch([delivery.id])
    assert device(delivery.user_id, "tok-busy-1").consecutive_failures == 1
    assert device(delivery.user_id, "tok-fine-2").consecutive_failures == 0

    Device.objects.using(shards[0]).filter(token="tok-busy-1").update(consecutive_failures=10)
    old_user = user_on(shards[1])
    register_device(old_user, platform="web", token="tok-old-1")
    Device.objects.using(shards[1]).filter(user_id=old_user).update(last_seen_at=timezone.now() - timedelta(days=91))

    from io import StringIO

    out = StringIO()
    call_command("prune_devices", "--dry-run", stdout=out)
    assert (
        out.getvalue().strip() == "would delete 2 device(s): 1 not seen for 90 days, 1 with 10+ failed sends in a row"
    )
    assert Device.objects.using(shards[0]).filter(token="tok-busy-1").exists()
    call_command("prune_devices", stdout=out)
    assert not Device.objects.using(shards[0]).filter(token="tok-busy-1").exists()
    assert not Device.objects.using(shards[1]).filter(user_id=old_user).exists()
    assert Device.objects.using(shards[0]).filter(token="tok-fine-2").exists()


def test_a_success_resets_the_failure_count(shards, fcm):
    delivery = push(shards[1], "tok-fine-1")
    Device.objects.using(shards[1]).filter(token="tok-fine-1").update(consecutive_failures=4)
    deliver_batch([delivery.id])
    assert device(delivery.user_id, "tok-fine-1").consecutive_failures == 0


def test_start_up_names_what_a_provider_misses(tmp_path):
    with override_settings(
        NOTIFY_PROVIDERS={"email": ["sendgrid"], "sms": ["twilio"], "push": ["fcm"], "inapp": ["console"]},
        SENDGRID_API_KEY="",
        SENDGRID_FROM_EMAIL="",
        TWILIO_ACCOUNT_SID="AC1",
        TWILIO_AUTH_TOKEN="",
        TWILIO_FROM="",
        FIREBASE_CREDENTIALS=str(tmp_path / "missing.json"),
    ):
        problems = check_configuration()
    assert problems == [
        "email provider 'sendgrid': set SENDGRID_API_KEY, SENDGRID_FROM_EMAIL",
        "sms provider 'twilio': set TWILIO_AUTH_TOKEN, TWILIO_FROM",
        f"push provider 'fcm': FIREBASE_CREDENTIALS ({tmp_path / 'missing.json'}) is not a readable "
        "service-account file: FileNotFoundError",
    ]


def test_the_admin_shows_a_device_failure_count(shards, fcm, staff):
    delivery = push(shards[1], "tok-busy-1")
    deliver_batch([delivery.id])
    row = device(delivery.user_id, "tok-busy-1")
    assert row.consecutive_failures == 1
    page = staff.get(f"/admin/delivery/device/{row.id}/change/")
    assert page.status_code == 200 and "Consecutive failures" in page.content.decode()
