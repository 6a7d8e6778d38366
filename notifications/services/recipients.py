"""Recipients (how to reach a user) and their devices, on the user's shard."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from config.sharding import shard_for_user
from delivery.services.devices import device_document, list_devices
from notifications.models import Recipient
from notifications.schemas import InlineRecipient, RecipientRequest

RECIPIENT_FIELDS = ("email", "email_verified", "email_bounced", "phone", "phone_verified", "locale", "timezone")
INLINE_FIELDS = ("email", "phone", "locale", "timezone")


def put_recipient(user_id: str, request: RecipientRequest) -> tuple[Recipient, bool]:
    """Replace the contact record of ``user_id`` (fields left out are cleared); returns (row, created)."""
    alias = shard_for_user(user_id)
    now = timezone.now()
    fields = {
        "email": request.email or "",
        "email_verified": request.email_verified,
        "phone": request.phone or "",
        "phone_verified": request.phone_verified,
        "locale": request.locale or "",
        "timezone": request.timezone or "",
    }
    for _ in range(2):
        try:
            with transaction.atomic(using=alias):
                recipient = Recipient.objects.using(alias).select_for_update().filter(user_id=user_id).first()
                if recipient is None:
                    recipient = Recipient(user_id=user_id, created_at=now, updated_at=now, **fields)
                    recipient.save(using=alias, force_insert=True)
                    return recipient, True
                if fields["email"] != recipient.email:
                    recipient.email_bounced = False  # a new address has not bounced
                for name, value in fields.items():
                    setattr(recipient, name, value)
                recipient.updated_at = now
                recipient.save(using=alias)
                return recipient, False
        except IntegrityError:
            continue  # created concurrently; the second pass updates it
    raise RuntimeError("recipient upsert kept conflicting")  # pragma: no cover


def get_recipient(user_id: str) -> Recipient | None:
    return Recipient.objects.for_user(user_id).filter(user_id=user_id).first()


def recipient_document(recipient: Recipient) -> dict[str, Any]:
    return {
        "user_id": recipient.user_id,
        "email": recipient.email,
        "email_verified": recipient.email_verified,
        "email_bounced": recipient.email_bounced,
        "phone": recipient.phone,
        "phone_verified": recipient.phone_verified,
        "locale": recipient.locale,
        "timezone": recipient.timezone,
        "created_at": recipient.created_at,
        "updated_at": recipient.updated_at,
        "devices": [device_document(device) for device in list_devices(recipient.user_id)],
    }


def _recipient_sql(connection, count: int) -> str:
    quote = connection.ops.quote_name
    meta = Recipient._meta
    columns = ", ".join(quote(meta.get_field(name).column) for name in ("user_id", *RECIPIENT_FIELDS))
    if connection.vendor == "postgresql":
        # One statement text for any number of users, so PostgreSQL can keep it prepared.
        condition = f"{quote('user_id')} = ANY(%s)"
    else:
        condition = f"{quote('user_id')} IN ({', '.join(['%s'] * count)})"
    return f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {condition}"


def load_recipients(alias: str, user_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Contact facts per user id, in one query. Plain SQL: this runs on every send, and the
    ORM's query compilation costs more than the indexed lookup itself."""
    if not user_ids:
        return {}
    connection = connections[alias]
    sql = _recipient_sql(connection, len(user_ids))
    if connection.vendor == "postgresql":
        import psycopg

        connection.ensure_connection()
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, [list(user_ids)])
            rows = cursor.fetchall()
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, list(user_ids))
            rows = cursor.fetchall()
    recipients = {}
    for user_id, email, email_verified, email_bounced, phone, phone_verified, locale, tz in rows:
        recipients[user_id] = {
            "email": email,
            "email_verified": bool(email_verified),
            "email_bounced": bool(email_bounced),
            "phone": phone,
            "phone_verified": bool(phone_verified),
            "locale": locale,
            "timezone": tz,
        }
    return recipients


def upsert_inline(alias: str, recipients: list[InlineRecipient], now: datetime) -> None:
    """Create or update recipients given inline in sends, inside the send transaction.

    Rows are locked in user-id order (two bulk requests sharing recipients cannot deadlock)
    and each user is written once, the last mention winning.
    """
    merged: dict[str, dict] = {}
    for inline in recipients:
        fields = merged.setdefault(inline.user_id, {})
        fields.update({name: getattr(inline, name) for name in INLINE_FIELDS if getattr(inline, name) is not None})
    for user_id in sorted(merged):
        provided = merged[user_id]
        recipient = Recipient.objects.using(alias).select_for_update().filter(user_id=user_id).first()
        if recipient is None:
            Recipient(user_id=user_id, created_at=now, updated_at=now, **provided).save(using=alias, force_insert=True)
            continue
        if "email" in provided and provided["email"] != recipient.email:
            recipient.email_bounced = False
        for name, value in provided.items():
            setattr(recipient, name, value)
        recipient.updated_at = now
        recipient.save(using=alias)
