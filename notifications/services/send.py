"""The send service: check -> authorize -> render -> idempotency -> recipient + decision ->
persist (one transaction per shard) -> publish after commit.

Every sender uses it: the API (a single send is a batch of one), campaigns, scheduled
releases, the admin's "send a test". It takes :class:`SendRequest` objects and a
:class:`Sender` and returns one :class:`SendResult` per request, in order. Problems with the
request itself (unknown type, forbidden type or priority, bad contact data, missing template
variables) reject the whole call before anything is written, raised as ``InvalidRequest`` or
``NotPermitted``. Idempotency outcomes and storage failures only concern their own items and
come back in their results.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from config.bulk import insert_rows
from delivery.services.publishing import publish_deliveries
from delivery.services.records import delivery_rows
from delivery.services.status import channel_summaries
from notifications.errors import Unavailable
from notifications.services import idempotency, inbox
from notifications.services.planning import (
    INBOX_ROW,
    NOTIFICATION_ROW,
    PlannedNotification,
    PreparedSend,
    plan,
    recipient_facts,
)
from notifications.services.recipients import load_recipients, upsert_contacts
from notifications.services.send_checks import prepare
from notifications.services.send_keys import claim_keys, follow, key_conflict, release_keys, stored_keys_on
from notifications.services.sending import DUPLICATE, ChannelPlan, Sender, SendRequest, SendResult

logger = logging.getLogger(__name__)

# How often a shard's write is retried after finding keys the database already holds.
_WRITE_ATTEMPTS = 3


def send(sender: Sender, requests: Sequence[SendRequest], *, now: datetime | None = None) -> list[SendResult]:
    now = now or timezone.now()
    prepared = prepare(sender, requests, now)
    results: dict[int, SendResult] = {}
    keyed = claim_keys(sender.key, prepared, results)

    by_shard: dict[str, list[PreparedSend]] = defaultdict(list)
    for item in keyed.owned:
        by_shard[item.alias].append(item)
    pending = dict(by_shard)
    try:
        for alias, items in by_shard.items():
            _send_on_shard(alias, sender, items, results, now)
            del pending[alias]
    except BaseException:
        # A bug or an interrupt: what was not written yet must not hold its keys (a retry
        # would get 409 "in progress" until they expired).
        release_keys(sender.key, [item for items in pending.values() for item in items])
        raise

    _fill_duplicate_channels(results, prepared)
    for item, leader in keyed.followers:
        results[item.index] = follow(results[leader.index])
    return [results[i] for i in range(len(requests))]


def send_one(sender: Sender, request: SendRequest) -> SendResult:
    return send(sender, [request])[0]


def _send_on_shard(alias: str, sender: Sender, items: list[PreparedSend], results, now: datetime) -> None:
    try:
        stored = load_recipients(alias, {item.user_id for item in items})
    except DatabaseError as exc:
        _unavailable(alias, sender, items, results, exc)
        return
    planned = [plan(item, recipient_facts(stored.get(item.user_id), item.contact), sender, now) for item in items]
    for _ in range(_WRITE_ATTEMPTS):
        try:
            _write(alias, sender, planned, now)
        except IntegrityError:
            # Either the database already holds some of these keys (Redis lost them or was
            # down), or a concurrent request created the same recipient: answer the former
            # from the database and try again; the retry finds the recipient row.
            planned = _drop_stored_keys(alias, sender.key, planned, results)
            if not planned:
                return
            continue
        except DatabaseError as exc:
            _unavailable(alias, sender, [p.prepared for p in planned], results, exc)
            return
        for p in planned:
            results[p.prepared.index] = SendResult(p.prepared.notification_id, p.outcome, p.channels)
        return
    _unavailable(alias, sender, [p.prepared for p in planned], results, None)


def _write(alias: str, sender: Sender, planned: list[PlannedNotification], now: datetime) -> None:
    with transaction.atomic(using=alias):
        upsert_contacts(alias, [(p.prepared.user_id, p.prepared.contact) for p in planned if p.prepared.contact], now)
        insert_rows(
            alias,
            [
                NOTIFICATION_ROW.rows([p.notification_row for p in planned]),
                delivery_rows([d for p in planned for d in p.deliveries], now),
                INBOX_ROW.rows([p.inbox_row for p in planned if p.inbox_row]),
            ],
        )
        inbox.add_unread(alias, Counter(p.prepared.user_id for p in planned if p.inbox_row))
        transaction.on_commit(partial(_after_commit, alias, sender.key, planned), using=alias)


def _after_commit(alias: str, sender_key: str, planned: list[PlannedNotification]) -> None:
    publish_deliveries(alias, [(d.id, d.channel, d.priority) for p in planned for d in p.deliveries if d.publish_now])
    idempotency.finalize(sender_key, [(p.prepared.key, p.prepared.notification_id) for p in planned])


def _unavailable(alias: str, sender: Sender, items: list[PreparedSend], results, exc: Exception | None) -> None:
    # Not the database's message: its DETAIL/CONTEXT lines can quote submitted data.
    cause = exc.__cause__ if exc is not None else None
    logger.error(
        "writing %d notifications to %s failed: %s (sqlstate %s)",
        len(items),
        alias,
        type(cause or exc).__name__ if exc is not None else "repeated key conflicts",
        getattr(cause, "sqlstate", "?"),
    )
    release_keys(sender.key, items)
    error = Unavailable("the notification store is unavailable; retry later", code="storage_unavailable")
    for item in items:
        results[item.index] = SendResult(error=error)


def _drop_stored_keys(alias, sender_key: str, planned: list[PlannedNotification], results) -> list[PlannedNotification]:
    stored = stored_keys_on(alias, sender_key, [p.prepared.request.idempotency_key for p in planned])
    kept = []
    for p in planned:
        hit = stored.get(p.prepared.request.idempotency_key)
        if hit is None:
            kept.append(p)
        elif hit[1] == p.prepared.fingerprint:
            results[p.prepared.index] = SendResult(hit[0], DUPLICATE)
        else:
            results[p.prepared.index] = SendResult(error=key_conflict())
    return kept


def _fill_duplicate_channels(results: dict[int, SendResult], prepared: list[PreparedSend]) -> None:
    """Duplicates answer with the original notification's current channel statuses."""
    alias_of = {p.index: p.alias for p in prepared}
    wanted: dict[str, list[uuid.UUID]] = defaultdict(list)
    for index, result in results.items():
        if result.outcome == DUPLICATE and result.channels is None:
            wanted[alias_of[index]].append(result.notification_id)
    for alias, ids in wanted.items():
        try:
            summaries = channel_summaries(alias, ids)
        except DatabaseError:
            summaries = {}
        for index, result in results.items():
            if result.outcome == DUPLICATE and result.channels is None and alias_of[index] == alias:
                result.channels = [ChannelPlan(**s) for s in summaries.get(result.notification_id, [])]
