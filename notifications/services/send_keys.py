"""Idempotency for one send call: which items this call must create, and what the others get.

Redis reserves keys (``notifications.services.idempotency``); the unique (sender, key)
constraint on each shard is the truth when Redis is down or has forgotten.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from config.sharding import shard_for_id
from notifications.errors import Conflict, Problem
from notifications.models import Notification
from notifications.services import idempotency
from notifications.services.idempotency import KeyRequest, Reservation, Verdict
from notifications.services.planning import PreparedSend
from notifications.services.sending import DUPLICATE, SendResult


def key_conflict() -> Conflict:
    return Conflict.of(
        [Problem("idempotency_key", "idempotency_conflict", "this key was already used with a different request body")],
        code="idempotency_conflict",
    )


def key_busy() -> Conflict:
    return Conflict.of(
        [Problem("idempotency_key", "idempotency_in_progress", "a request with this key is still being processed; retry")],
        code="idempotency_in_progress",
    )


@dataclass
class KeyedItems:
    owned: list[PreparedSend]  # this call holds their keys and must create them
    followers: list[tuple[PreparedSend, PreparedSend]]  # (item, earlier item with the same key and body)


def claim_keys(sender_key: str, prepared: list[PreparedSend], results: dict[int, SendResult]) -> KeyedItems:
    """Reserve the keys of ``prepared``; items that are duplicates or conflicts get their result."""
    leaders: list[PreparedSend] = []
    followers: list[tuple[PreparedSend, PreparedSend]] = []
    first: dict[str, PreparedSend] = {}
    for item in prepared:
        leader = first.get(item.key.key)
        if leader is None:
            first[item.key.key] = item
            leaders.append(item)
        elif leader.fingerprint != item.fingerprint:
            results[item.index] = SendResult(error=key_conflict())
        else:
            followers.append((item, leader))

    reservations = idempotency.reserve(
        sender_key, [p.key for p in leaders], lambda keys: stored_keys(sender_key, keys)
    )
    if reservations is None:  # no Redis: the database constraint decides
        return KeyedItems(list(leaders), followers)
    owned = []
    for item, reservation in zip(leaders, reservations, strict=True):
        if reservation.verdict is Verdict.OWNED:
            owned.append(item)
        elif reservation.verdict is Verdict.DUPLICATE:
            results[item.index] = SendResult(reservation.notification_id, DUPLICATE)
        elif reservation.verdict is Verdict.CONFLICT:
            results[item.index] = SendResult(error=key_conflict())
        else:
            results[item.index] = SendResult(error=key_busy())
    return KeyedItems(owned, followers)


def release_keys(sender_key: str, items: Sequence[PreparedSend]) -> None:
    """Give back keys whose notifications were not written, so a retry is not told 'busy'."""
    idempotency.release(sender_key, [(item.key, Reservation(Verdict.OWNED)) for item in items])


def follow(leader_result: SendResult) -> SendResult:
    if leader_result.error is not None:
        return SendResult(error=leader_result.error)
    return SendResult(leader_result.notification_id, DUPLICATE, leader_result.channels)


def stored_keys(sender_key: str, requests: Sequence[KeyRequest]) -> dict[str, tuple[uuid.UUID, str]]:
    """Notifications the database already holds for these keys, looked up on each key's shard."""
    by_shard: dict[str, list[str]] = defaultdict(list)
    for request in requests:
        by_shard[shard_for_id(request.proposed_id)].append(request.key)
    found = {}
    for alias, keys in by_shard.items():
        found.update(stored_keys_on(alias, sender_key, keys))
    return found


def stored_keys_on(alias: str, sender_key: str, keys: Sequence[str]) -> dict[str, tuple[uuid.UUID, str]]:
    rows = (
        Notification.objects.using(alias)
        .filter(sender=sender_key, idempotency_key__in=list(keys))
        .values_list("idempotency_key", "id", "request_hash")
    )
    return {key: (notification_id, fingerprint) for key, notification_id, fingerprint in rows}
