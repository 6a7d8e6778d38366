"""The idempotency fast path in Redis; the unique (client, key) constraint on the shard is the truth.

A request first reserves each key with ``SET NX`` (value ``p|id|fingerprint``, short TTL).
After its transaction commits it rewrites the value as done (``d|id|fingerprint``,
kept 24 h). A concurrent request with the same key waits for the holder to finish, then
answers ``duplicate`` with the same id; a different body under the same key is a conflict.
If Redis is unreachable the request goes on without it and the database constraint decides.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import redis
from django.conf import settings

from config.redis import get_redis

logger = logging.getLogger(__name__)

PENDING_TTL_SECONDS = 60
# One round trip per batch, whatever its size (a bulk request reserves up to 1000 keys; as
# separate pipelined commands the client-side cost per key dominated the whole request).
# Returns, per key, false if this call took it, else the value already there.
_RESERVE = """
local ttl = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('set', key, ARGV[i + 1], 'NX', 'EX', ttl) then
    out[i] = false
  else
    out[i] = redis.call('get', key) or ''
  end
end
return out
"""
_FINALIZE = """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('set', key, ARGV[i + 1], 'EX', ttl)
end
return #KEYS
"""
_RELEASE = """
local released = 0
for i, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[i] then
    released = released + redis.call('del', key)
  end
end
return released
"""


class Verdict(Enum):
    OWNED = "owned"  # this request holds the key and must create the notification
    DUPLICATE = "duplicate"  # an earlier request with this key and body created it
    CONFLICT = "conflict"  # the key was used with a different body
    BUSY = "busy"  # another request still holds the key after the wait


@dataclass(frozen=True)
class Reservation:
    verdict: Verdict
    notification_id: uuid.UUID | None = None


@dataclass(frozen=True)
class KeyRequest:
    key: str
    fingerprint: str
    proposed_id: uuid.UUID


def _redis_key(sender_key: str, key: str) -> str:
    return f"idem:{sender_key}:{key}"


def _pending(request: KeyRequest) -> str:
    return f"p|{request.proposed_id}|{request.fingerprint}"


def _judge(value: bytes | None, request: KeyRequest) -> Reservation | None:
    """What a stored value means for ``request``; None means wait (or retry the SET)."""
    if value is None:
        return None
    state, notification_id, fingerprint, *_ = value.decode().split("|")
    if fingerprint != request.fingerprint:
        return Reservation(Verdict.CONFLICT)
    if state == "d":
        return Reservation(Verdict.DUPLICATE, uuid.UUID(notification_id))
    return None


StoredLookup = Callable[[Sequence[KeyRequest]], dict[str, tuple[uuid.UUID, str]]]


def reserve(
    sender_key: str, requests: Sequence[KeyRequest], lookup_stored: StoredLookup | None = None
) -> list[Reservation] | None:
    """Reserve every key in one round trip; None when Redis is unavailable.

    ``lookup_stored`` answers, for keys another request holds, whether the database already
    has their notification ``{key: (id, fingerprint)}``: the holder may have
    committed and then died before recording the key as done.
    """
    client = get_redis()
    if client is None or not requests:
        return None if client is None else []
    results: list[Reservation | None] = [None] * len(requests)
    waiting = list(range(len(requests)))
    deadline = time.monotonic() + settings.IDEMPOTENCY_WAIT_SECONDS
    pause = 0.005
    try:
        reserve_script = client.register_script(_RESERVE)
        while waiting:
            values = reserve_script(
                keys=[_redis_key(sender_key, requests[i].key) for i in waiting],
                args=[PENDING_TTL_SECONDS, *(_pending(requests[i]) for i in waiting)],
            )
            still = []
            for i, value in zip(waiting, values, strict=True):
                if value is None:  # Lua false: this call took the key
                    results[i] = Reservation(Verdict.OWNED, requests[i].proposed_id)
                    continue
                judged = _judge(value or None, requests[i])
                if judged is None:
                    still.append(i)
                else:
                    results[i] = judged
            waiting = still
            if waiting and lookup_stored is not None:
                stored = lookup_stored([requests[i] for i in waiting])
                still = []
                for i in waiting:
                    hit = stored.get(requests[i].key)
                    if hit is None:
                        still.append(i)
                    elif hit[1] == requests[i].fingerprint:
                        results[i] = Reservation(Verdict.DUPLICATE, hit[0])
                    else:
                        results[i] = Reservation(Verdict.CONFLICT)
                waiting = still
            if waiting:
                if time.monotonic() >= deadline:
                    for i in waiting:
                        results[i] = Reservation(Verdict.BUSY)
                    break
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
    except redis.RedisError:
        logger.warning("redis unavailable for idempotency; relying on the database constraint", exc_info=True)
        release(sender_key, [(requests[i], results[i]) for i in range(len(requests)) if results[i]])
        return None
    return results  # type: ignore[return-value]


def finalize(sender_key: str, done: Sequence[tuple[KeyRequest, uuid.UUID]]) -> None:
    """Record finished notifications so later requests answer ``duplicate`` for 24 h."""
    client = get_redis()
    if client is None or not done:
        return
    try:
        client.register_script(_FINALIZE)(
            keys=[_redis_key(sender_key, request.key) for request, _ in done],
            args=[
                settings.IDEMPOTENCY_TTL_SECONDS,
                *(f"d|{notification_id}|{request.fingerprint}" for request, notification_id in done),
            ],
        )
    except redis.RedisError:
        # The pending values expire; the database constraint answers repeats meanwhile.
        logger.warning("could not record %d idempotency keys as done", len(done), exc_info=True)


def release(sender_key: str, held: Sequence[tuple[KeyRequest, Reservation | None]]) -> None:
    """Give back keys this request reserved but did not use (its work failed)."""
    client = get_redis()
    owned = [request for request, reservation in held if reservation and reservation.verdict is Verdict.OWNED]
    if client is None or not owned:
        return
    try:
        client.register_script(_RELEASE)(
            keys=[_redis_key(sender_key, request.key) for request in owned], args=[_pending(request) for request in owned]
        )
    except redis.RedisError:
        logger.warning("could not release %d idempotency keys", len(owned), exc_info=True)
