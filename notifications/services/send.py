"""The send pipeline: validate -> authorize -> idempotency -> recipient + decision -> render
-> persist (one transaction per shard) -> publish after commit.

A single send is a batch of one; the bulk API uses the same path. Problems with the request
itself (unknown type, forbidden type or priority, missing template variables) reject the whole
request before anything is written. Per-item results are idempotency outcomes and storage
failures, which only concern their own items.
"""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Sequence

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from django.conf import settings

from config.bulk import JsonText, Rows, dump_json, insert_rows
from config.sharding import bucket_for, new_id, shard_for_bucket, shard_for_id
from delivery.services.publishing import publish_deliveries
from delivery.services.records import delivery_rows
from delivery.services.status import channel_summaries
from notifications.errors import ApiError, FieldProblem
from notifications.models import ApiScope, InboxItem, Notification
from notifications.schemas import SendNotificationRequest
from notifications.services import catalog, idempotency
from notifications.services.catalog import ClientInfo, TypeInfo
from notifications.services.idempotency import KeyRequest, Reservation, Verdict
from notifications.services.planning import (
    INBOX_COLUMNS,
    NOTIFICATION_COLUMNS,
    MissingVariables,
    PlannedNotification,
    PreparedSend,
    plan,
    recipient_facts,
)
from notifications.services.recipients import load_recipients, upsert_inline
from templates_app.rendering import template_catalog

logger = logging.getLogger(__name__)

DUPLICATE = "duplicate"
# A send_at this far in the past is treated as "now" (client clocks drift); earlier is an error.
SEND_AT_CLOCK_SKEW = timedelta(seconds=60)


@dataclass
class ItemResult:
    index: int
    notification_id: uuid.UUID | None = None
    outcome: str | None = None
    channels: list[dict[str, str]] | None = None
    error: ApiError | None = None

    @property
    def created(self) -> bool:
        return self.error is None and self.outcome != DUPLICATE


def send_notification(client: ClientInfo, request: SendNotificationRequest) -> ItemResult:
    return send_notifications(client, [request], field_prefix=lambda index: "")[0]


def send_notifications(client: ClientInfo, requests: Sequence[SendNotificationRequest], *, field_prefix=None) -> list[ItemResult]:
    field_prefix = field_prefix or (lambda index: f"items[{index}].")
    now = timezone.now()
    prepared = _prepare_all(client, requests, field_prefix, now)
    results: dict[int, ItemResult] = {}

    leaders, followers = _split_repeated_keys(prepared, results, field_prefix)
    reservations = idempotency.reserve(client.id, [p.key for p in leaders], partial(_stored_keys, client.id))
    owned = _apply_reservations(leaders, reservations, results, field_prefix)

    by_shard: dict[str, list[PreparedSend]] = defaultdict(list)
    for item in owned:
        by_shard[item.alias].append(item)
    try:
        plans = {alias: _plan_shard(alias, items, client.id, now, field_prefix) for alias, items in by_shard.items()}
    except BaseException:
        idempotency.release(client.id, [(p.key, Reservation(Verdict.OWNED)) for p in owned])
        raise

    pending = list(plans)
    try:
        for alias in list(pending):
            _persist_shard(alias, client, plans[alias], results, field_prefix, now)
            pending.remove(alias)
    except BaseException:
        # A bug or an interrupt: what was not written yet must not hold its keys (a retry
        # would get 409 "in progress" until they expired).
        idempotency.release(client.id, [(p.prepared.key, Reservation(Verdict.OWNED)) for a in pending for p in plans[a]])
        raise

    _fill_duplicate_channels(results, prepared)
    for follower, leader in followers:
        results[follower.index] = _follow(follower, results[leader.index])
    return [results[i] for i in range(len(requests))]


# --- 1. validate and authorize (all or nothing) -----------------------------------------


def _fingerprint(request: SendNotificationRequest, data_json: str) -> str:
    recipient = request.recipient.model_dump_json(exclude_none=True) if request.recipient else ""
    parts = (
        request.type,
        request.target_user_id,
        ",".join(request.channels or ()),
        request.priority or "",
        request.send_at.isoformat() if request.send_at else "",
        recipient,
        data_json,
    )
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16).hexdigest()


def _prepare_all(client: ClientInfo, requests, field_prefix, now: datetime) -> list[PreparedSend]:
    problems: list[FieldProblem] = []
    forbidden: list[FieldProblem] = []
    prepared = []
    max_bytes = settings.NOTIFICATION_DATA_MAX_BYTES
    latest_send_at = now + timedelta(days=settings.SEND_AT_MAX_AHEAD_DAYS)
    # A bulk request usually repeats a few types: resolve each once, not once per item.
    types: dict[str, TypeInfo | None] = {}
    template_channels: dict[str, frozenset[str]] = {}
    for index, request in enumerate(requests):
        prefix = field_prefix(index)
        problem = _cross_field_problem(client, request, now, latest_send_at)
        if problem is not None:
            bucket = forbidden if problem.code == "recipients_scope_required" else problems
            bucket.append(FieldProblem(f"{prefix}{problem.field}", problem.code, problem.message))
            continue
        unstorable = _unstorable_value(request.data)
        if unstorable:
            problems.append(FieldProblem(f"{prefix}data", "invalid_value", unstorable))
            continue
        data_bytes = dump_json(request.data, sort_keys=True)
        if len(data_bytes) > max_bytes:
            problems.append(FieldProblem(f"{prefix}data", "data_too_large", f"data is larger than {max_bytes} bytes as JSON"))
            continue
        if request.type not in types:
            types[request.type] = catalog.get_type(request.type)
        notification_type = types[request.type]
        if notification_type is None:
            problems.append(FieldProblem(f"{prefix}type", "unknown_type", f"unknown notification type '{request.type}'"))
            continue
        if not client.may_send_type(notification_type.key):
            forbidden.append(
                FieldProblem(f"{prefix}type", "type_not_allowed", f"this API key may not send '{notification_type.key}'")
            )
            continue
        priority = request.priority or notification_type.default_priority
        if priority == "critical":
            if not client.may_send_critical:
                forbidden.append(
                    FieldProblem(f"{prefix}priority", "critical_not_allowed", "this API key may not send critical priority")
                )
                continue
            if not notification_type.allow_critical:
                problems.append(
                    FieldProblem(
                        f"{prefix}priority",
                        "critical_not_allowed_for_type",
                        f"type '{notification_type.key}' cannot be sent at critical priority",
                    )
                )
                continue
        if request.channels:
            key = notification_type.key
            if key not in template_channels:
                template_channels[key] = frozenset(template_catalog.get(key))
            missing = [c for c in request.channels if c not in template_channels[key]]
            if missing:
                problems.append(
                    FieldProblem(
                        f"{prefix}channels",
                        "no_template",
                        f"type '{notification_type.key}' has no template for {', '.join(missing)}",
                    )
                )
                continue
        user_id = request.target_user_id
        send_at = request.send_at if request.send_at and request.send_at > now else None
        data_json = JsonText(data_bytes.decode())
        fingerprint = _fingerprint(request, data_json.text)
        bucket = bucket_for(user_id)
        prepared.append(
            PreparedSend(
                index=index,
                request=request,
                type=notification_type,
                user_id=user_id,
                alias=shard_for_bucket(bucket),
                priority=priority,
                channels=tuple(request.channels or notification_type.default_channels),
                fingerprint=fingerprint,
                send_at=send_at,
                key=KeyRequest(request.idempotency_key, fingerprint, new_id(bucket)),
                data_json=data_json,
            )
        )
    if forbidden:
        raise ApiError(403, "forbidden", _summary(forbidden), forbidden)
    if problems:
        raise ApiError(400, "invalid_request", _summary(problems), problems)
    return prepared


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


def _cross_field_problem(
    client: ClientInfo, request: SendNotificationRequest, now: datetime, latest: datetime
) -> FieldProblem | None:
    """Rules spanning fields, which the request schema leaves to the service."""
    if request.recipient is not None and ApiScope.RECIPIENTS not in client.scopes:
        # An inline recipient updates the stored contact record, so it needs the same right
        # as PUT /recipients: a send-only key must not redirect another client's mail.
        return FieldProblem("recipient", "recipients_scope_required", "this API key lacks the 'recipients' scope")
    if request.user_id is None and request.recipient is None:
        return FieldProblem("user_id", "missing_user", "give user_id or recipient")
    if request.user_id is not None and request.recipient is not None and request.recipient.user_id != request.user_id:
        return FieldProblem("recipient.user_id", "user_mismatch", "user_id and recipient.user_id differ")
    if request.channels is not None and len(set(request.channels)) != len(request.channels):
        return FieldProblem("channels", "duplicate_channel", "channels lists a channel twice")
    if request.send_at is not None:
        if request.send_at < now - SEND_AT_CLOCK_SKEW:
            return FieldProblem("send_at", "send_at_past", "send_at is in the past")
        if request.send_at > latest:
            return FieldProblem(
                "send_at", "send_at_too_far", f"send_at is more than {settings.SEND_AT_MAX_AHEAD_DAYS} days ahead"
            )
    return None


def _summary(problems: list[FieldProblem]) -> str:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{first.field}: {first.message}{more}"


# --- 2. idempotency -----------------------------------------------------------------------


def _conflict(prefix: str, code: str, message: str) -> ApiError:
    return ApiError(409, code, f"{prefix}idempotency_key: {message}", [FieldProblem(f"{prefix}idempotency_key", code, message)])


def _key_conflict(prefix: str) -> ApiError:
    return _conflict(prefix, "idempotency_conflict", "this key was already used with a different request body")


def _split_repeated_keys(prepared, results, field_prefix):
    """Within one request, later items repeating a key follow the first item with that key."""
    leaders: list[PreparedSend] = []
    followers: list[tuple[PreparedSend, PreparedSend]] = []
    first: dict[str, PreparedSend] = {}
    for item in prepared:
        leader = first.get(item.key.key)
        if leader is None:
            first[item.key.key] = item
            leaders.append(item)
        elif leader.fingerprint != item.fingerprint:
            results[item.index] = ItemResult(item.index, error=_key_conflict(field_prefix(item.index)))
        else:
            followers.append((item, leader))
    return leaders, followers


def _stored_keys(client_id: int, requests: Sequence[KeyRequest]) -> dict[str, tuple[uuid.UUID, str]]:
    """Notifications the database already holds for these keys, looked up on each key's shard."""
    by_shard: dict[str, list[str]] = defaultdict(list)
    for request in requests:
        by_shard[shard_for_id(request.proposed_id)].append(request.key)
    found = {}
    for alias, keys in by_shard.items():
        rows = (
            Notification.objects.using(alias)
            .filter(client_id=client_id, idempotency_key__in=keys)
            .values_list("idempotency_key", "id", "request_hash")
        )
        found.update({key: (notification_id, fingerprint) for key, notification_id, fingerprint in rows})
    return found


def _apply_reservations(leaders, reservations, results, field_prefix) -> list[PreparedSend]:
    if reservations is None:  # no Redis: the database constraint decides
        return list(leaders)
    owned = []
    for item, reservation in zip(leaders, reservations):
        prefix = field_prefix(item.index)
        if reservation.verdict is Verdict.OWNED:
            owned.append(item)
        elif reservation.verdict is Verdict.DUPLICATE:
            results[item.index] = ItemResult(item.index, reservation.notification_id, DUPLICATE)
        elif reservation.verdict is Verdict.CONFLICT:
            results[item.index] = ItemResult(item.index, error=_key_conflict(prefix))
        else:
            results[item.index] = ItemResult(
                item.index,
                error=_conflict(prefix, "idempotency_in_progress", "a request with this key is still being processed; retry"),
            )
    return owned


def _follow(follower: PreparedSend, leader_result: ItemResult) -> ItemResult:
    if leader_result.error is not None:
        return ItemResult(follower.index, error=leader_result.error)
    return ItemResult(follower.index, leader_result.notification_id, DUPLICATE, leader_result.channels)


# --- 3. plan: recipients, decision, rendering -------------------------------------------


def _plan_shard(alias, items: list[PreparedSend], client_id: int, now, field_prefix) -> list[PlannedNotification]:
    stored = load_recipients(alias, {item.user_id for item in items})
    planned = []
    problems = []
    templates: dict[str, dict] = {}
    for item in items:
        type_key = item.type.key
        if type_key not in templates:
            templates[type_key] = template_catalog.get(type_key)
        try:
            planned.append(plan(item, recipient_facts(stored.get(item.user_id), item), client_id, now, templates[type_key]))
        except MissingVariables as exc:
            problems.append(
                FieldProblem(
                    f"{field_prefix(item.index)}data",
                    "missing_variables",
                    f"the {exc.channel} template needs {', '.join(exc.names)}",
                )
            )
    if problems:
        raise ApiError(400, "invalid_request", _summary(problems), problems)
    return planned


# --- 4. persist and publish -----------------------------------------------------------------


def _write(alias: str, client_id: int, planned: list[PlannedNotification], now: datetime) -> None:
    with transaction.atomic(using=alias):
        upsert_inline(alias, [p.prepared.request.recipient for p in planned if p.prepared.request.recipient], now)
        insert_rows(
            alias,
            [
                Rows(Notification, NOTIFICATION_COLUMNS, [p.notification_row for p in planned]),
                delivery_rows([d for p in planned for d in p.deliveries], now),
                Rows(InboxItem, INBOX_COLUMNS, [p.inbox_row for p in planned if p.inbox_row]),
            ],
        )
        transaction.on_commit(partial(_after_commit, alias, client_id, planned), using=alias)


def _after_commit(alias: str, client_id: int, planned: list[PlannedNotification]) -> None:
    publish_deliveries(alias, [(d.id, d.channel, d.priority) for p in planned for d in p.deliveries if d.publish_now])
    idempotency.finalize(client_id, [(p.prepared.key, p.prepared.notification_id) for p in planned])


def _persist_shard(alias, client: ClientInfo, planned, results, field_prefix, now) -> None:
    remaining = list(planned)
    for _ in range(3):
        try:
            _write(alias, client.id, remaining, now)
        except IntegrityError:
            # Either the database already holds some of these keys (Redis lost them or was
            # down), or a concurrent request created the same inline recipient: drop the
            # former and try again; the retry finds the recipient row.
            remaining = _drop_stored_keys(alias, client.id, remaining, results, field_prefix)
            if not remaining:
                return
            continue
        except DatabaseError as exc:
            # Not the database's message: its DETAIL/CONTEXT lines can quote submitted data.
            cause = exc.__cause__
            logger.error(
                "writing %d notifications to %s failed: %s (sqlstate %s)",
                len(remaining),
                alias,
                type(cause or exc).__name__,
                getattr(cause, "sqlstate", "?"),
            )
            break
        for p in remaining:
            results[p.prepared.index] = ItemResult(p.prepared.index, p.prepared.notification_id, p.outcome, p.channels)
        return
    idempotency.release(client.id, [(p.prepared.key, Reservation(Verdict.OWNED)) for p in remaining])
    for p in remaining:
        results[p.prepared.index] = ItemResult(
            p.prepared.index,
            error=ApiError(503, "storage_unavailable", "the notification store is unavailable; retry later"),
        )


def _drop_stored_keys(alias, client_id, remaining, results, field_prefix) -> list[PlannedNotification]:
    keys = [p.prepared.request.idempotency_key for p in remaining]
    stored = {
        key: (notification_id, request_hash)
        for key, notification_id, request_hash in Notification.objects.using(alias)
        .filter(client_id=client_id, idempotency_key__in=keys)
        .values_list("idempotency_key", "id", "request_hash")
    }
    kept = []
    for p in remaining:
        hit = stored.get(p.prepared.request.idempotency_key)
        if hit is None:
            kept.append(p)
            continue
        index = p.prepared.index
        if hit[1] == p.prepared.fingerprint:
            results[index] = ItemResult(index, hit[0], DUPLICATE)
        else:
            results[index] = ItemResult(index, error=_key_conflict(field_prefix(index)))
    return kept


def _fill_duplicate_channels(results: dict[int, ItemResult], prepared: list[PreparedSend]) -> None:
    """Duplicates answer with the original notification's current channel statuses."""
    alias_of = {p.index: p.alias for p in prepared}
    wanted: dict[str, list[uuid.UUID]] = defaultdict(list)
    for index, result in results.items():
        if result.outcome == DUPLICATE and result.channels is None:
            wanted[alias_of[index]].append(result.notification_id)
    for alias, ids in wanted.items():
        summaries = channel_summaries(alias, ids)
        for index, result in results.items():
            if result.outcome == DUPLICATE and result.channels is None and alias_of[index] == alias:
                result.channels = summaries.get(result.notification_id, [])
