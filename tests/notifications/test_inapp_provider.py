"""The in-app provider in this process: presence decides between a live frame and the inbox,
and delivery tells notifications through its signals."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.core.management import call_command

from delivery.models import Delivery
from delivery.providers.inapp import user_group
from delivery.services import presence
from delivery.services.dispatch import deliver_batch
from delivery.signals import inapp_offline
from notifications.models import InboxItem
from notifications.services import user_tokens
from tests.support.factories import make_recipient, send_body

pytestmark = pytest.mark.django_db(databases="__all__")


def send_inapp(api, user_id: str) -> tuple[str, Delivery]:
    response = api.post("/api/v1/notifications", send_body(user_id, channels=["inapp"]), format="json")
    assert response.status_code == 202, response.content
    notification_id = response.json()["id"]
    return notification_id, Delivery.objects.for_id(notification_id).get(notification_id=notification_id)


def test_an_offline_user_keeps_it_in_the_inbox_and_the_fallback_hook_hears_of_it(api):
    make_recipient("alice")
    heard = []

    def receiver(messages, **kwargs):
        heard.extend(m.notification_id for m in messages)

    inapp_offline.connect(receiver)
    try:
        notification_id, delivery = send_inapp(api, "alice")
        deliver_batch([delivery.id])
    finally:
        inapp_offline.disconnect(receiver)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.provider, delivery.provider_message_id) == ("sent", "inapp", "inbox")
    assert [str(i) for i in heard] == [notification_id]
    assert InboxItem.objects.for_user("alice").get(notification_id=notification_id).delivered_at is None


def test_an_online_user_gets_a_frame_on_their_group_and_the_item_is_marked_delivered(api):
    make_recipient("alice")
    notification_id, delivery = send_inapp(api, "alice")

    async def listen_while_delivering() -> dict:
        # One event loop for the listening side (the pub/sub layer's channels belong to one).
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(user_group("alice"), channel)
        try:
            await sync_to_async(presence.touch)("alice", "test-connection")
            await sync_to_async(deliver_batch)([delivery.id])
            return await layer.receive(channel)
        finally:
            await sync_to_async(presence.leave)("alice", "test-connection")
            await layer.group_discard(user_group("alice"), channel)

    message = async_to_sync(listen_while_delivering)()
    frame = message["frame"]
    assert (frame["type"], frame["id"], frame["cursor"], frame["category"]) == (
        "notification", notification_id, notification_id, "transactional",
    )  # fmt: skip
    delivery.refresh_from_db()
    assert delivery.provider_message_id == "live"
    assert InboxItem.objects.for_user("alice").get(notification_id=notification_id).delivered_at is not None
    assert presence.connection_count("alice") == 0


def test_group_names_are_valid_and_distinct_for_every_user_id():
    names = {user_group(u) for u in ("a:b", "a_3ab", "a@b", "a.b", "a-b", "A")}
    assert len(names) == 6
    assert all(len(n) < 100 and n.replace("_", "").replace(".", "").replace("-", "").isalnum() for n in names)


def test_issue_user_token_prints_a_token_for_the_user(capsys):
    call_command("issue_user_token", "alice", "--ttl", "60")
    assert user_tokens.verify(capsys.readouterr().out.strip()) == "alice"
