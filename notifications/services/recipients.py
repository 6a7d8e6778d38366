"""Recipients (how to reach a user), on the user's shard.

Contact data is checked by the shared rules (``notifications.rules``) here, so the API, the
admin and the commands store the same normalized values: E.164 phones, IANA time zones,
language tags. Changing the email address clears its bounce flag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from config.sharding import shard_for_user
from delivery.services.devices import device_document, list_devices
from notifications import rules
from notifications.errors import InvalidRequest, Problem
from notifications.models import Recipient
from notifications.services.sending import ContactUpdate

RECIPIENT_FIELDS = ("email", "email_verified", "email_bounced", "phone", "phone_verified", "locale", "timezone")
_TEXT_RULES = {"email": rules.email, "phone": rules.phone, "locale": rules.locale, "timezone": rules.timezone_name}


@dataclass(frozen=True)
class ContactRecord:
    """A recipient's whole contact record; empty text means "not set"."""

    email: str = ""
    email_verified: bool = True
    phone: str = ""
    phone_verified: bool = True
    locale: str = ""
    timezone: str = ""


def clean_contact(fields: Mapping[str, Any]) -> ContactRecord:
    """A contact record from loose values (None or "" clear a field), normalized by the
    shared rules; raises InvalidRequest naming every bad field."""
    values: dict[str, Any] = {}
    problems = []
    for name, rule in _TEXT_RULES.items():
        raw = fields.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            values[name] = ""
            continue
        try:
            values[name] = rule(raw)
        except rules.RuleViolation as violation:
            problems.append(Problem(name, violation.code, violation.message))
    for name in ("email_verified", "phone_verified"):
        raw = fields.get(name)
        values[name] = True if raw is None else bool(raw)
    if problems:
        raise InvalidRequest.of(problems)
    return ContactRecord(**values)


def put_recipient(user_id: str, record: ContactRecord, *, email_bounced: bool | None = None) -> tuple[Recipient, bool]:
    """Replace the contact record of ``user_id``; returns (row, created).

    ``email_bounced`` sets the bounce flag explicitly (an operator clearing it); a new email
    address always starts unbounced.
    """
    rules.user_id(user_id)
    alias = shard_for_user(user_id)
    now = timezone.now()
    fields = {name: getattr(record, name) for name in ContactRecord.__dataclass_fields__}
    for _ in range(2):
        try:
            with transaction.atomic(using=alias):
                recipient = Recipient.objects.using(alias).select_for_update().filter(user_id=user_id).first()
                if recipient is None:
                    recipient = Recipient(
                        user_id=user_id, created_at=now, updated_at=now, email_bounced=bool(email_bounced), **fields
                    )
                    recipient.save(using=alias, force_insert=True)
                    return recipient, True
                if fields["email"] != recipient.email:
                    recipient.email_bounced = False
                elif email_bounced is not None:
                    recipient.email_bounced = email_bounced
                if fields["phone"] != recipient.phone:
                    recipient.phone_unreachable = False
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
    """A recipient as the API shows it; unset contact fields are null (and PUT takes null)."""
    return {
        "user_id": recipient.user_id,
        "email": recipient.email or None,
        "email_verified": recipient.email_verified,
        "email_bounced": recipient.email_bounced,
        "phone": recipient.phone or None,
        "phone_verified": recipient.phone_verified,
        "locale": recipient.locale or None,
        "timezone": recipient.timezone or None,
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


def upsert_contacts(alias: str, updates: Sequence[tuple[str, ContactUpdate]], now: datetime) -> None:
    """Create or update recipients from contact fields given in sends (already normalized),
    inside the send transaction.

    Rows are locked in user-id order (two bulk requests sharing recipients cannot deadlock)
    and each user is written once, the last mention winning.
    """
    merged: dict[str, dict] = {}
    for user_id, contact in updates:
        fields = merged.setdefault(user_id, {})
        fields.update({name: getattr(contact, name) for name in _TEXT_RULES if getattr(contact, name) is not None})
    for user_id in sorted(merged):
        provided = merged[user_id]
        recipient = Recipient.objects.using(alias).select_for_update().filter(user_id=user_id).first()
        if recipient is None:
            Recipient(user_id=user_id, created_at=now, updated_at=now, **provided).save(using=alias, force_insert=True)
            continue
        if "email" in provided and provided["email"] != recipient.email:
            recipient.email_bounced = False
        if "phone" in provided and provided["phone"] != recipient.phone:
            recipient.phone_unreachable = False
        for name, value in provided.items():
            setattr(recipient, name, value)
        recipient.updated_at = now
        recipient.save(using=alias)


def flag_rejected_address(user_id: str, *, channel: str, reason: str = "", address: str | None = None) -> int:
    """The provider refused this user's address for good: email marks it bounced, SMS marks
    the phone unreachable (both cleared when the address changes). With ``address`` (the one
    the delivery went to), only while the user still has that address: a bounce reported days
    later must not flag a new one."""
    flag, contact = {"email": ("email_bounced", "email"), "sms": ("phone_unreachable", "phone")}.get(channel, (None, None))
    if flag is None:
        return 0
    rows = Recipient.objects.for_user(user_id).filter(user_id=user_id)
    if address:
        rows = rows.filter(**{f"{contact}__iexact": address})
    return rows.update(**{flag: True, "updated_at": timezone.now()})
