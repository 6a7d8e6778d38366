"""The first step of a send: check every item, authorize it, render it (all or nothing).

Everything here depends on the request alone (and the catalog), never on the stored
recipient: the same request gets the same answer for every user. Problems are collected
for every item, each naming its item and field, so one answer lists all of them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings

from config.bulk import JsonText, dump_json
from config.sharding import bucket_for, new_id, shard_for_bucket
from notifications import rules
from notifications.errors import InvalidRequest, NotPermitted, Problem
from notifications.services import catalog
from notifications.services.catalog import TypeInfo
from notifications.services.idempotency import KeyRequest
from notifications.services.planning import CONTACT_FIELDS, PreparedSend
from notifications.services.sending import ContactUpdate, Sender, SendRequest
from templates_app.rendering import CompiledTemplate, TemplateDataError, template_catalog

# A send_at this far in the past is treated as "now" (client clocks drift); earlier is an error.
SEND_AT_CLOCK_SKEW = timedelta(seconds=60)
_CONTACT_RULES = {"email": rules.email, "phone": rules.phone, "locale": rules.locale, "timezone": rules.timezone_name}


class _ItemProblem(Exception):
    def __init__(self, problem: Problem, *, forbidden: bool = False):
        self.problem = problem
        self.forbidden = forbidden


def prepare(sender: Sender, requests: Sequence[SendRequest], now: datetime) -> list[PreparedSend]:
    """Check, authorize and render every item; raise NotPermitted or InvalidRequest listing
    every problem (forbidden ones first: they say the caller cannot do this at all)."""
    context = _Context(now)
    prepared: list[PreparedSend] = []
    invalid: list[Problem] = []
    forbidden: list[Problem] = []
    for index, request in enumerate(requests):
        try:
            prepared.append(_prepare_one(sender, index, request, context))
        except _ItemProblem as caught:
            (forbidden if caught.forbidden else invalid).append(caught.problem.at(index))
        except TemplateDataError as caught:
            invalid.extend(
                Problem(f"data.{p.path}" if p.path else "data", p.code, f"{p.message} ({caught.channel} template)", index)
                for p in caught.problems
            )
    if forbidden:
        raise NotPermitted.of(forbidden)
    if invalid:
        raise InvalidRequest.of(invalid)
    return prepared


class _Context:
    """What every item of one request shares: the clock, limits, and a memo of the catalog
    (a bulk request usually repeats a few types: each is resolved once, not once per item)."""

    def __init__(self, now: datetime):
        self.now = now
        self.latest_send_at = now + timedelta(days=settings.SEND_AT_MAX_AHEAD_DAYS)
        self.max_data_bytes = settings.NOTIFICATION_DATA_MAX_BYTES
        self.types: dict[str, TypeInfo | None] = {}
        self.templates: dict[str, dict[str, CompiledTemplate]] = {}

    def type(self, key: str) -> TypeInfo | None:
        if key not in self.types:
            self.types[key] = catalog.get_type(key)
        return self.types[key]

    def templates_of(self, key: str) -> dict[str, CompiledTemplate]:
        if key not in self.templates:
            self.templates[key] = template_catalog.get(key)
        return self.templates[key]


def _invalid(field: str, code: str, message: str) -> _ItemProblem:
    return _ItemProblem(Problem(field, code, message))


def _forbidden(field: str, code: str, message: str) -> _ItemProblem:
    return _ItemProblem(Problem(field, code, message), forbidden=True)


def _prepare_one(sender: Sender, index: int, request: SendRequest, context: _Context) -> PreparedSend:
    if not rules.USER_ID_PATTERN.match(request.user_id):
        raise _invalid("user_id", "invalid_user_id", rules.USER_ID_MESSAGE)
    contact = _contact(sender, request.contact)
    _check_shape(request, context)
    data_bytes = _check_data(request.data, context.max_data_bytes)
    notification_type = context.type(request.type_key)
    if notification_type is None:
        raise _invalid("type", "unknown_type", f"unknown notification type '{request.type_key}'")
    if not sender.may_send_type(notification_type.key):
        raise _forbidden("type", "type_not_allowed", f"{sender.label} may not send '{notification_type.key}'")
    priority = request.priority or notification_type.default_priority
    if priority == "critical":
        if not sender.may_send_critical:
            raise _forbidden("priority", "critical_not_allowed", f"{sender.label} may not send critical priority")
        if not notification_type.allow_critical:
            raise _invalid(
                "priority",
                "critical_not_allowed_for_type",
                f"type '{notification_type.key}' cannot be sent at critical priority",
            )
    channels = tuple(request.channels or notification_type.default_channels)
    # Every channel that has a template is rendered, whether or not this recipient can get
    # it: a missing variable is the request's fault, whoever it is for.
    templates = context.templates_of(notification_type.key)
    payloads = {channel: templates[channel].render(request.data) for channel in channels if channel in templates}
    # The type's fallback channels are rendered too (a standby delivery carries its content,
    # so the worker that activates it needs nothing from this app).
    for channel in notification_type.fallback_channels:
        if channel not in payloads and channel in templates:
            payloads[channel] = templates[channel].render(request.data)

    send_at = request.send_at if request.send_at and request.send_at > context.now else None
    data_json = JsonText(data_bytes.decode())
    fingerprint = _fingerprint(request, contact, data_json.text)
    bucket = bucket_for(request.user_id)
    return PreparedSend(
        index=index,
        request=request,
        type=notification_type,
        alias=shard_for_bucket(bucket),
        priority=priority,
        channels=channels,
        fingerprint=fingerprint,
        send_at=send_at,
        key=KeyRequest(request.idempotency_key, fingerprint, new_id(bucket)),
        data_json=data_json,
        payloads=payloads,
        contact=contact,
    )


def _contact(sender: Sender, contact: ContactUpdate | None) -> ContactUpdate | None:
    """Contact fields normalized by the shared rules. Storing them changes the recipient's
    record, so it needs the same right as updating the recipient directly."""
    if contact is None:
        return None
    if not sender.may_update_contacts:
        raise _forbidden(
            "recipient", "recipients_scope_required", f"{sender.label} lacks the 'recipients' scope needed to store contact details"
        )
    normalized = {}
    for name in CONTACT_FIELDS:
        value = getattr(contact, name)
        if value is None:
            continue
        try:
            normalized[name] = _CONTACT_RULES[name](value)
        except rules.RuleViolation as violation:
            raise _invalid(f"recipient.{name}", violation.code, violation.message) from None
    return ContactUpdate(**normalized)


def _check_shape(request: SendRequest, context: _Context) -> None:
    """What the API's request schema already ensures, checked again for other callers."""
    key = request.idempotency_key
    if len(key) > 255 or not rules.IDEMPOTENCY_KEY_PATTERN.match(key):
        raise _invalid("idempotency_key", "invalid_idempotency_key", "must be 1-255 printable characters")
    if request.channels is not None:
        try:
            rules.channels(list(request.channels))
        except rules.RuleViolation as violation:
            raise _invalid("channels", violation.code, violation.message) from None
    if request.priority is not None and request.priority not in settings.PRIORITIES:
        raise _invalid("priority", "invalid_priority", f"must be one of {', '.join(settings.PRIORITIES)}")
    if request.send_at is not None:
        if request.send_at.tzinfo is None:
            raise _invalid("send_at", "naive_datetime", "must carry a time zone offset")
        if request.send_at < context.now - SEND_AT_CLOCK_SKEW:
            raise _invalid("send_at", "send_at_past", "send_at is in the past")
        if request.send_at > context.latest_send_at:
            raise _invalid(
                "send_at", "send_at_too_far", f"send_at is more than {settings.SEND_AT_MAX_AHEAD_DAYS} days ahead"
            )


def _check_data(data, max_bytes: int) -> bytes:
    if not isinstance(data, dict):
        raise _invalid("data", "invalid_data", "must be a JSON object")
    unstorable = _unstorable_value(data)
    if unstorable:
        raise _invalid("data", "invalid_value", unstorable)
    data_bytes = dump_json(data, sort_keys=True)
    if len(data_bytes) > max_bytes:
        raise _invalid("data", "data_too_large", f"data is larger than {max_bytes} bytes as JSON")
    return data_bytes


def _unstorable_value(value, depth: int = 0) -> str | None:
    """What in ``data`` JSON storage cannot hold: NUL characters and non-finite numbers
    (the request parser accepts both)."""
    if isinstance(value, str):
        return "text contains a NUL character (\\u0000)" if "\x00" in value else None
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers must be finite (no NaN or Infinity)"
    if depth > 64:
        return "is nested more than 64 levels deep"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _unstorable_value(key, depth) or _unstorable_value(item, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _unstorable_value(item, depth + 1)
            if problem:
                return problem
    return None


def _fingerprint(request: SendRequest, contact: ContactUpdate | None, data_json: str) -> str:
    parts = (
        request.type_key,
        request.user_id,
        ",".join(request.channels or ()),
        request.priority or "",
        request.send_at.isoformat() if request.send_at else "",
        "|".join(f"{name}={getattr(contact, name)}" for name in CONTACT_FIELDS) if contact else "",
        data_json,
    )
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16).hexdigest()
