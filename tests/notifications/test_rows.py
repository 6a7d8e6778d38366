"""Rows written in bulk are built by field name from columns declared once: every model
column is written, and a missing or unknown one fails where the row is built."""

import pytest

from config.bulk import RowSpec
from delivery.models import Delivery
from delivery.services.records import DELIVERY_ROW
from notifications.models import InboxItem, Notification
from notifications.services.planning import INBOX_ROW, NOTIFICATION_ROW
from tests.support.factories import make_recipient, send_body, user_on

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.mark.parametrize("spec", [NOTIFICATION_ROW, INBOX_ROW, DELIVERY_ROW], ids=lambda s: s.model.__name__)
def test_every_model_column_is_declared(spec):
    assert sorted(spec.columns) == sorted(f.attname for f in spec.model._meta.concrete_fields)


def test_a_missing_or_unknown_column_fails_where_the_row_is_built():
    with pytest.raises(TypeError, match="user_id"):
        NOTIFICATION_ROW.row(id=1)
    spec = RowSpec(InboxItem, defaults={"delivered_at": None, "seen_at": None, "read_at": None, "archived_at": None})
    with pytest.raises(TypeError, match="nonsense"):
        spec.row(nonsense=1)
    with pytest.raises(ValueError, match="no column"):
        RowSpec(Delivery, defaults={"not_a_column": 1})


def test_a_send_writes_every_column_as_planned(api, shards):
    user = user_on(shards[1])
    make_recipient(user)
    body = send_body(user, priority="high")
    notification_id = api.post("/api/v1/notifications", body, format="json").json()["id"]
    notification = Notification.objects.using(shards[1]).get(id=notification_id)
    assert (notification.user_id, notification.type_key, notification.category, notification.priority) == (
        user, "order_shipped", "transactional", "high"
    )  # fmt: skip
    assert notification.sender.startswith("client:") and notification.idempotency_key == body["idempotency_key"]
    assert notification.data == body["data"] and len(notification.request_hash) == 32
    assert (notification.outcome, notification.send_at) == ("queued", None) and notification.created_at
    inbox = InboxItem.objects.using(shards[1]).get(notification_id=notification_id)
    assert (inbox.title, inbox.category, inbox.visible_at) == ("Order A-100 has shipped", "transactional", inbox.created_at)
    email = Delivery.objects.using(shards[1]).get(notification_id=notification_id, channel="email")
    assert (email.status, email.address, email.attempts, email.priority) == ("queued", f"{user}@example.com", 0, "high")
    assert email.payload["subject"] == "Order A-100 has shipped"
    assert email.published_at == email.created_at and email.republish_at > email.published_at
