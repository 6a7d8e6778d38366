"""GET /api/v1/notifications/{id}."""


import pytest
from rest_framework.test import APIClient

from config.sharding import new_id_for_user
from delivery.models import Delivery
from delivery.services.dispatch import deliver_batch
from notifications.schemas import NotificationStatusResponse
from tests.support.factories import make_key, make_recipient, send_body, user_on

pytestmark = pytest.mark.django_db(databases="__all__")


def send(api, user, **overrides) -> str:
    response = api.post("/api/v1/notifications", send_body(user, **overrides), format="json")
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def test_status_shows_each_channel_as_it_progresses(api, shards):
    user = user_on(shards[1])
    make_recipient(user)
    notification_id = send(api, user, type="security_alert", data={"event": "Password changed"})

    queued = NotificationStatusResponse.model_validate(api.get(f"/api/v1/notifications/{notification_id}").json())
    assert queued.status == "in_progress"
    assert [(c.channel, c.status) for c in queued.channels] == [
        ("email", "queued"), ("sms", "queued"), ("push", "queued"), ("inapp", "queued")
    ]  # fmt: skip

    deliver_batch(Delivery.objects.using(shards[1]).values_list("id", flat=True))

    done = NotificationStatusResponse.model_validate(api.get(f"/api/v1/notifications/{notification_id}").json())
    by_channel = {c.channel: c for c in done.channels}
    assert done.status == "sent"
    assert by_channel["email"].status == "sent" and by_channel["email"].provider == "console"
    assert by_channel["email"].sent_at is not None and by_channel["email"].attempts == 1
    # No device registered: push ends skipped with its reason; the notification still counts as sent.
    assert (by_channel["push"].status, by_channel["push"].reason) == ("skipped", "no_devices")


def test_skipped_everywhere_reads_as_skipped(api, shards):
    notification_id = send(api, user_on(shards[0]), channels=["email"])
    assert api.get(f"/api/v1/notifications/{notification_id}").json()["status"] == "skipped"


def test_scheduled_reads_as_scheduled(api, shards):
    from datetime import timedelta

    from django.utils import timezone

    later = (timezone.now() + timedelta(hours=1)).isoformat()
    notification_id = send(api, user_on(shards[0]), channels=["inapp"], send_at=later)
    body = api.get(f"/api/v1/notifications/{notification_id}").json()
    assert (body["status"], body["accepted_as"]) == ("scheduled", "scheduled")


@pytest.mark.parametrize("raw", ["nope", "f5c111f8-49c1-46ff-b528-da491279e413", "00000000-0000-0000-0000-000000000000"])
def test_unknown_or_malformed_ids_are_404(api, raw):
    response = api.get(f"/api/v1/notifications/{raw}")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_routable_id_that_does_not_exist_is_404(api, shards):
    assert api.get(f"/api/v1/notifications/{new_id_for_user('ghost')}").status_code == 404


def test_other_clients_cannot_see_a_notification(api, shards, demo_catalog):
    notification_id = send(api, user_on(shards[0]))
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key()}")
    response = other.get(f"/api/v1/notifications/{notification_id}")
    assert response.status_code == 404
    assert response.json() == {"status": 404, "code": "not_found", "message": "no such notification", "errors": []}


def test_status_needs_the_status_scope(api, shards, demo_catalog):
    notification_id = send(api, user_on(shards[0]))
    sender_only = APIClient()
    sender_only.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(scopes=['send'])}")
    assert sender_only.get(f"/api/v1/notifications/{notification_id}").status_code == 403


@pytest.mark.parametrize(
    "statuses, overall",
    [
        ({"email": "sent", "push": "failed", "inapp": "delivered"}, "partially_sent"),
        ({"email": "failed", "push": "dead_lettered", "inapp": "failed"}, "failed"),
        ({"email": "sent", "push": "retrying", "inapp": "sent"}, "in_progress"),
        ({"email": "sent", "push": "skipped", "inapp": "sent"}, "sent"),
    ],
)
def test_the_overall_status_sums_up_the_channels(api, shards, statuses, overall):
    user = user_on(shards[0])
    make_recipient(user)
    created = api.post("/api/v1/notifications", send_body(user), format="json").json()
    for channel, status in statuses.items():
        Delivery.objects.using(shards[0]).filter(notification_id=created["id"], channel=channel).update(status=status)
    body = api.get(f"/api/v1/notifications/{created['id']}").json()
    assert (body["status"], body["accepted_as"]) == (overall, "queued")
    assert {c["channel"]: c["status"] for c in body["channels"]} == statuses
