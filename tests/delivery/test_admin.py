"""Delivery admin: what a delivery page shows for its status, links to its notification, and
actions that reach every shard."""

import uuid

import pytest
from django.utils import timezone

from delivery.models import Delivery, DeliveryStatus
from tests.support.admin import cell, page_text, row_ids
from tests.support.factories import make_delivery, reload

pytestmark = pytest.mark.django_db(databases="__all__")


def test_a_finished_delivery_shows_no_lease_or_republish_time(staff, shards):
    sent = make_delivery(shards[0])  # queued: a republish time and, once claimed, a lease ...
    Delivery.objects.using(shards[0]).filter(id=sent.id).update(
        status=DeliveryStatus.SENT, lease_token=uuid.uuid4(), lease_expires_at=timezone.now()
    )  # ... which stay on the row after it is sent
    page = page_text(staff.get(f"/admin/delivery/delivery/{sent.id}/change/"))
    assert "Republish at" not in page and "Lease" not in page
    queued = make_delivery(shards[1])
    assert queued.republish_at is not None
    assert "Republish at" in page_text(staff.get(f"/admin/delivery/delivery/{queued.id}/change/"))


def test_a_delivery_links_to_its_notification(staff, shards):
    delivery = make_delivery(shards[1])
    response = staff.get("/admin/delivery/delivery/")
    link = f'href="/admin/notifications/notification/{delivery.notification_id}/change/"'
    assert link in cell(response, str(delivery.id), "notification_link")
    assert link in page_text(staff.get(f"/admin/delivery/delivery/{delivery.id}/change/"))


def test_selected_failed_deliveries_on_every_shard_are_requeued(staff, shards):
    failed = [make_delivery(shards[i], status=DeliveryStatus.FAILED) for i in (0, 1)]
    sent = make_delivery(shards[0], status=DeliveryStatus.SENT)
    selected = [str(d.id) for d in (*failed, sent)]
    response = staff.post(
        "/admin/delivery/delivery/", {"action": "requeue_selected", "_selected_action": selected}, follow=True
    )
    assert "2 deliveries queued to be sent again (1 skipped" in page_text(response)
    assert [reload(d).status for d in failed] == ["queued", "queued"]
    assert reload(sent).status == "sent"


def test_requeue_of_everything_matching_a_filter_reaches_every_shard(staff, shards):
    failed = [make_delivery(shards[i], status=DeliveryStatus.DEAD_LETTERED) for i in (0, 1)]
    listing = staff.get("/admin/delivery/delivery/?status__exact=dead_lettered")
    assert set(row_ids(listing)) == {str(d.id) for d in failed}
    response = staff.post(
        "/admin/delivery/delivery/?status__exact=dead_lettered",
        {"action": "requeue_selected", "select_across": "1", "_selected_action": [str(failed[0].id)]},
        follow=True,
    )
    assert "2 deliveries queued to be sent again" in page_text(response)
    assert not Delivery.objects.using(shards[0]).filter(status="dead_lettered").exists()
    assert not Delivery.objects.using(shards[1]).filter(status="dead_lettered").exists()
