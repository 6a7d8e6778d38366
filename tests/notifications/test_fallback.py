"""Fallback chains: a type's channels standing in for each other when one fails for good
for the user. Planned at accept time (standby rows), activated by the dispatcher, ended by
the sweep; the status API says why on both deliveries."""

from __future__ import annotations

import pytest

from config.sharding import shard_for_id
from delivery.models import Delivery
from delivery.services.devices import register_device
from delivery.services.dispatch import deliver_batch
from delivery.services.sweep import sweep_shard
from notifications import rules
from notifications.models import NotificationType
from notifications.services.planning import FallbackStep, fallback_steps
from preferences.policy import ChannelVerdict
from tests.support.admin import form_errors
from tests.support.factories import make_recipient, send_body, user_on

pytestmark = pytest.mark.django_db(databases="__all__")

URL = "/api/v1/notifications"


def chain(key: str = "order_shipped", *, default=("push",), fallback=("push", "email", "sms")) -> None:
    notification_type = NotificationType.objects.get(key=key)
    notification_type.default_channels = list(default)
    notification_type.fallback_channels = list(fallback)
    notification_type.full_clean()
    notification_type.save()  # clears this process's catalog copy


def send(api, user: str, **overrides) -> dict:
    response = api.post(URL, send_body(user, **overrides), format="json")
    assert response.status_code == 202, response.json()
    return response.json()


def rows(notification_id: str) -> dict[str, Delivery]:
    found = Delivery.objects.using(shard_for_id(notification_id)).filter(notification_id=notification_id)
    return {d.channel: d for d in found}


def status_channels(api, notification_id: str) -> dict[str, dict]:
    body = api.get(f"{URL}/{notification_id}").json()
    return {c["channel"]: c for c in body["channels"]}


def test_push_without_devices_falls_back_to_email_which_is_sent(api, shards):
    chain()
    user = user_on(shards[0])
    make_recipient(user)
    accepted = send(api, user)
    assert [(c["channel"], c["status"], c["reason"]) for c in accepted["channels"]] == [
        ("push", "queued", ""),
        ("email", "standby", "fallback"),
        ("sms", "standby", "fallback"),
    ]
    planned = rows(accepted["id"])
    assert planned["email"].fallback_of == planned["push"].id
    assert planned["sms"].fallback_of == planned["email"].id
    assert planned["email"].payload["subject"] and planned["email"].address == f"{user}@example.com"
    assert api.get(f"{URL}/{accepted['id']}").json()["status"] == "in_progress"

    deliver_batch([planned["push"].id])  # no device: skipped, and email is queued at once
    after = rows(accepted["id"])
    assert (after["push"].status, after["push"].reason) == ("skipped", "no_devices")
    assert (after["email"].status, after["email"].reason) == ("queued", "fallback")
    assert after["sms"].status == "standby"
    assert deliver_batch([planned["email"].id]).outcomes == {"sent": 1}

    sweep_shard(shards[0])  # email was sent: sms is not needed
    channels = status_channels(api, accepted["id"])
    assert (channels["push"]["status"], channels["push"]["reason"], channels["push"]["fallback_to"]) == (
        "skipped", "no_devices", "email"
    )  # fmt: skip
    assert (channels["email"]["status"], channels["email"]["fallback_of"], channels["email"]["fallback_to"]) == (
        "sent", "push", "sms"
    )  # fmt: skip
    assert (channels["sms"]["status"], channels["sms"]["reason"], channels["sms"]["fallback_of"]) == (
        "skipped", "fallback_not_needed", "email"
    )  # fmt: skip
    assert api.get(f"{URL}/{accepted['id']}").json()["status"] == "sent"


def test_an_offline_in_app_user_gets_the_push_standing_in_at_once(api, shards):
    """A chain starting with in-app: while the bell is closed, push stands in; the item still
    waits in the inbox (the in-app delivery is sent, not failed)."""
    chain(default=("inapp",), fallback=("inapp", "push"))
    user = user_on(shards[0])
    make_recipient(user)
    register_device(user, platform="android", token="tok-offline-1")
    accepted = send(api, user)
    planned = rows(accepted["id"])
    assert (planned["push"].status, planned["push"].fallback_of) == ("standby", planned["inapp"].id)

    assert deliver_batch([planned["inapp"].id]).outcomes == {"sent": 1}  # nobody connected
    after = rows(accepted["id"])
    assert (after["inapp"].status, after["inapp"].provider_message_id) == ("sent", "inbox")
    assert (after["push"].status, after["push"].reason) == ("queued", "fallback")
    assert deliver_batch([planned["push"].id]).outcomes == {"sent": 1}
    channels = status_channels(api, accepted["id"])
    assert (channels["push"]["status"], channels["push"]["fallback_of"]) == ("sent", "inapp")


def test_an_online_in_app_user_needs_no_push(api, shards):
    from delivery.services import presence

    chain(default=("inapp",), fallback=("inapp", "push"))
    user = user_on(shards[1])
    make_recipient(user)
    register_device(user, platform="android", token="tok-online-1")
    accepted = send(api, user)
    planned = rows(accepted["id"])
    presence.touch(user, "connection-1")  # as an open WebSocket does
    try:
        assert deliver_batch([planned["inapp"].id]).outcomes == {"sent": 1}
    finally:
        presence.leave(user, "connection-1")
    assert rows(accepted["id"])["push"].status == "standby"
    sweep_shard(shards[1])
    assert (rows(accepted["id"])["push"].status, rows(accepted["id"])["push"].reason) == ("skipped", "fallback_not_needed")


def test_push_sent_ends_the_email_standby_as_not_needed(api, shards):
    chain(fallback=("push", "email"))
    user = user_on(shards[1])
    make_recipient(user)
    register_device(user, platform="ios", token="tok-fallback-1")
    accepted = send(api, user)
    planned = rows(accepted["id"])
    assert deliver_batch([planned["push"].id]).outcomes == {"sent": 1}
    assert rows(accepted["id"])["email"].status == "standby"  # the dispatcher leaves it to the sweep
    assert api.get(f"{URL}/{accepted['id']}").json()["status"] == "sent"  # a standby is not pending

    assert sweep_shard(shards[1]).fallbacks_ended == 1
    channels = status_channels(api, accepted["id"])
    assert (channels["push"]["status"], channels["push"]["fallback_to"]) == ("sent", "email")
    assert (channels["email"]["status"], channels["email"]["reason"], channels["email"]["fallback_of"]) == (
        "skipped", "fallback_not_needed", "push"
    )  # fmt: skip
    assert deliver_batch([planned["email"].id]).claimed == 0  # never claimed as a standby or after


def test_every_device_token_invalid_falls_back(api, shards, scripted):
    chain(fallback=("push", "email"))
    user = user_on(shards[0])
    make_recipient(user)
    register_device(user, platform="android", token="tok-gone-1")
    accepted = send(api, user)
    scripted.script = ["targets"]  # tokens named "gone" are unregistered
    deliver_batch([rows(accepted["id"])["push"].id])
    after = rows(accepted["id"])
    assert (after["push"].status, after["push"].reason) == ("failed", "unregistered")
    assert (after["email"].status, after["email"].reason) == ("queued", "fallback")


def test_a_bounced_email_falls_back_to_sms_once(api, shards, scripted):
    chain(default=("email",), fallback=("email", "sms"))
    user = user_on(shards[1])
    make_recipient(user)
    accepted = send(api, user)
    scripted.script = ["permanent", "permanent"]
    deliver_batch([rows(accepted["id"])["email"].id])
    after = rows(accepted["id"])
    assert (after["email"].status, after["sms"].status) == ("failed", "queued")
    deliver_batch([after["sms"].id])  # the fallback fails too: nothing further to try
    final = rows(accepted["id"])
    assert (final["sms"].status, final["sms"].reason) == ("failed", "invalid_address")
    assert len(final) == 2


def test_retries_exhausted_do_not_fall_back(api, shards, scripted):
    """The provider failing is not the user being unreachable: the standby waits for a replay."""
    chain(default=("email",), fallback=("email", "sms"))
    user = user_on(shards[0])
    make_recipient(user)
    accepted = send(api, user)
    email = rows(accepted["id"])["email"]
    Delivery.objects.using(shards[0]).filter(id=email.id).update(attempts=5)
    scripted.script = ["temporary"]
    deliver_batch([email.id])
    sweep_shard(shards[0])
    after = rows(accepted["id"])
    assert (after["email"].status, after["sms"].status) == ("dead_lettered", "standby")


def test_an_address_missing_at_accept_time_queues_the_fallback_at_once(api, shards):
    chain(default=("email",), fallback=("email", "sms"))
    user = user_on(shards[0])
    make_recipient(user, email="")
    accepted = send(api, user)
    assert accepted["outcome"] == "queued"
    assert [(c["channel"], c["status"], c["reason"]) for c in accepted["channels"]] == [
        ("email", "skipped", "no_email_address"),
        ("sms", "queued", "fallback"),
    ]
    channels = status_channels(api, accepted["id"])
    assert (channels["email"]["fallback_to"], channels["sms"]["fallback_of"]) == ("sms", "email")


def test_no_fallback_configured_changes_nothing(api, shards):
    chain(default=("push",), fallback=())
    user = user_on(shards[1])
    make_recipient(user)
    accepted = send(api, user)
    assert [c["channel"] for c in accepted["channels"]] == ["push"]


def verdict(channel, send=True, reason="ok"):
    return ChannelVerdict(channel, send, reason)


@pytest.mark.parametrize(
    ("primary", "extra", "expected"),
    [
        # not in the chain's first channel: the chain starts at the first channel used
        ({"email": verdict("email")}, {"push": verdict("push"), "sms": verdict("sms")},
         [FallbackStep("sms", "email", False)]),
        # unreachable fallback passed over: sms stands in for push directly
        ({"push": verdict("push")}, {"email": verdict("email", False, "no_email_address"), "sms": verdict("sms")},
         [FallbackStep("sms", "push", False)]),
        # opted out of the primary: the user chose that, no fallback
        ({"push": verdict("push", False, "opted_out")}, {"email": verdict("email"), "sms": verdict("sms")}, []),
    ],
)  # fmt: skip
def test_fallback_steps_walk_the_chain(primary, extra, expected):
    assert fallback_steps(("push", "email", "sms"), primary, extra) == expected


@pytest.mark.parametrize(
    ("value", "code"),
    [(["push"], "fallback_too_short"), (["push", "inapp"], "inapp_fallback"), (["push", "push"], "duplicate_channel"),
     (["push", "fax"], "unknown_channel"), ("push,email", "invalid_channels")],
)  # fmt: skip
def test_fallback_chains_are_checked_by_the_shared_rule(value, code):
    with pytest.raises(rules.RuleViolation) as caught:
        rules.fallback_channels(value)
    assert caught.value.code == code
    assert rules.fallback_channels([]) == [] and rules.fallback_channels(["inapp", "push"]) == ["inapp", "push"]


def test_the_admin_edits_a_types_fallback_chain(demo_catalog):
    from tests.support.admin import staff_client

    staff = staff_client()
    notification_type = NotificationType.objects.get(key="promotion")
    url = f"/admin/notifications/notificationtype/{notification_type.pk}/change/"
    form = {
        "key": "promotion", "name": notification_type.name, "description": "", "category": "marketing",
        "default_channels": ["push"], "default_priority": "normal", "fallback_channels": "push, email",
    }  # fmt: skip
    assert staff.post(url, form).status_code == 302
    notification_type.refresh_from_db()
    assert notification_type.fallback_channels == ["push", "email"]
    assert "push, email" in staff.get(url).content.decode()
    errors = form_errors(staff.post(url, {**form, "fallback_channels": "email, inapp"}))
    assert list(errors) == ["fallback_channels"] and "inapp" in errors["fallback_channels"][0]
    assert "push → email" in staff.get("/admin/notifications/notificationtype/").content.decode()
