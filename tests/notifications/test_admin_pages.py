"""What an operator reads on notification, recipient and inbox pages: the live status next to
how a notification was accepted, links between a user's rows, the sender's name, readable
rendered content, and deletion that takes a notification's deliveries and inbox item along."""

import re

import pytest

from delivery.models import Delivery, Device
from delivery.services.devices import register_device
from delivery.services.dispatch import deliver_batch
from notifications.models import InboxItem, Notification
from tests.support.admin import cell, page_text, row_ids
from tests.support.factories import make_recipient, send_body, user_on

pytestmark = pytest.mark.django_db(databases="__all__")


def send(api, user, **overrides) -> str:
    response = api.post("/api/v1/notifications", send_body(user, **overrides), format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def deliver(alias: str) -> None:
    deliver_batch(Delivery.objects.using(alias).values_list("id", flat=True))


def test_the_list_says_accepted_as_and_shows_the_live_status(staff, api, shards):
    user = user_on(shards[1])
    make_recipient(user)
    sent = send(api, user, channels=["email"])
    deliver(shards[1])
    waiting = send(api, user_on(shards[0]), channels=["inapp"])
    response = staff.get("/admin/notifications/notification/")
    assert "Accepted as" in page_text(response)
    assert "queued" in cell(response, sent, "outcome")  # accepted as queued ...
    assert cell(response, sent, "live_status").startswith("sent")  # ... and sent since
    assert cell(response, waiting, "live_status").startswith("in progress")


def test_the_notification_page_shows_the_live_status(staff, api, shards):
    user = user_on(shards[0])
    make_recipient(user)
    notification_id = send(api, user, channels=["email", "sms"])
    deliver(shards[0])
    page = page_text(staff.get(f"/admin/notifications/notification/{notification_id}/change/"))
    assert "Accepted as" in page and "Status" in page
    assert re.search(r'<div class="readonly">sent\b', page)


def test_a_recipient_links_to_their_notifications_deliveries_devices_and_inbox(staff, api, shards):
    user = user_on(shards[1], "pat")
    longer = user + "x"  # shares the prefix: must not appear behind the links
    for who in (user, longer):
        make_recipient(who)
        register_device(who, platform="android", token=f"token-{who}-0123456789")
        send(api, who, channels=["inapp", "push"])
    page = page_text(staff.get(f"/admin/notifications/recipient/{user}/change/"))
    for path, model in (
        ("/admin/notifications/notification/", Notification),
        ("/admin/delivery/delivery/", Delivery),
        ("/admin/delivery/device/", Device),
        ("/admin/notifications/inboxitem/", InboxItem),
    ):
        link = f"{path}?user_id={user}"
        assert f'href="{link}"' in page
        expected = {str(pk) for pk in model.objects.for_user(user).filter(user_id=user).values_list("pk", flat=True)}
        assert expected and set(row_ids(staff.get(link))) == expected, path


def test_a_notification_lists_its_deliveries_as_links(staff, api, shards):
    notification_id = send(api, user_on(shards[0]), channels=["inapp", "push"])
    page = page_text(staff.get(f"/admin/notifications/notification/{notification_id}/change/"))
    for delivery in Delivery.objects.using(shards[0]).filter(notification_id=notification_id):
        assert f'href="/admin/delivery/delivery/{delivery.id}/change/"' in page


def test_inbox_items_link_to_their_notification(staff, api, shards):
    notification_id = send(api, user_on(shards[1]), channels=["inapp"])
    response = staff.get("/admin/notifications/inboxitem/")
    assert f'href="/admin/notifications/notification/{notification_id}/change/"' in page_text(response)


def test_the_sender_shows_the_api_clients_name(staff, api, shards):
    notification_id = send(api, user_on(shards[0]), channels=["inapp"])
    assert Notification.objects.for_id(notification_id).get(id=notification_id).sender.startswith("client:")
    listing = staff.get("/admin/notifications/notification/")
    assert "test-client" in cell(listing, notification_id, "sender_name")
    assert "test-client" in page_text(staff.get(f"/admin/notifications/notification/{notification_id}/change/"))


def test_rendered_content_is_shown_per_channel_as_escaped_text(staff, api, shards):
    user = user_on(shards[1])
    make_recipient(user)
    data = {"name": "<b>Ada</b>", "order_id": "A-1"}
    notification_id = send(api, user, channels=["email", "inapp"], data=data)
    page = page_text(staff.get(f"/admin/notifications/notification/{notification_id}/change/"))
    assert "Order A-1 has shipped" in page  # the subject, as text
    # The email's HTML is shown as source: its tags escaped once, the data's escaping visible.
    assert "&lt;p&gt;Good news &amp;lt;b&amp;gt;Ada&amp;lt;/b&amp;gt;" in page
    assert "<p>Good news" not in page
    assert '"subject":' not in page  # not one line of JSON


def test_deleting_a_notification_takes_its_deliveries_and_inbox_item(staff, api, shards):
    notification_id = send(api, user_on(shards[1]), channels=["inapp", "push"])
    kept = send(api, user_on(shards[1]), channels=["inapp"])
    confirm = page_text(staff.get(f"/admin/notifications/notification/{notification_id}/delete/"))
    assert "Delivery" in confirm and "Inbox item" in confirm
    response = staff.post(f"/admin/notifications/notification/{notification_id}/delete/", {"post": "yes"})
    assert response.status_code == 302
    alias = shards[1]
    assert not Notification.objects.using(alias).filter(id=notification_id).exists()
    assert not Delivery.objects.using(alias).filter(notification_id=notification_id).exists()
    assert not InboxItem.objects.using(alias).filter(notification_id=notification_id).exists()
    assert Delivery.objects.using(alias).filter(notification_id=kept).exists()


def test_bulk_delete_works_across_shards_and_asks_first(staff, api, shards):
    doomed = [send(api, user_on(shards[i]), channels=["inapp", "email"]) for i in (0, 1)]
    kept = send(api, user_on(shards[0]), channels=["inapp"])
    action = {"action": "delete_selected", "_selected_action": doomed}
    confirm = staff.post("/admin/notifications/notification/", action)
    assert confirm.status_code == 200 and "Are you sure" in page_text(confirm)
    assert Notification.objects.using(shards[0]).filter(id=doomed[0]).exists()  # nothing deleted yet
    done = staff.post("/admin/notifications/notification/", {**action, "post": "yes"}, follow=True)
    assert "Successfully deleted 2 notifications" in page_text(done)
    for notification_id in doomed:
        alias = shards[doomed.index(notification_id)]
        assert not Notification.objects.using(alias).filter(id=notification_id).exists()
        assert not Delivery.objects.using(alias).filter(notification_id=notification_id).exists()
        assert not InboxItem.objects.using(alias).filter(notification_id=notification_id).exists()
    assert row_ids(done) == [kept]


def test_a_user_without_a_contact_record_links_to_adding_one(staff, api, shards):
    user = user_on(shards[0], "inapp-only")
    notification_id = send(api, user, channels=["inapp"])
    listing = staff.get("/admin/notifications/notification/")
    assert f'href="/admin/notifications/recipient/{user}/change/"' in cell(listing, notification_id, "user")
    response = staff.get(f"/admin/notifications/recipient/{user}/change/", follow=True)
    page = page_text(response)
    assert "has no contact record yet" in page
    assert response.context["adminform"].form.initial["user_id"] == user
    assert f'href="/admin/notifications/notification/?user_id={user}"' in page
