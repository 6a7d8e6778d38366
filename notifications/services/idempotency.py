"""The idempotency fast path in Redis; the unique (client, key) constraint on the shard is the truth.

A request first reserves each key with ``SET NX`` (value ``p|id|fingerprint``, short TTL).
After its transaction commits it rewrites the value as done (``d|id|fingerprint|outcome``,
kept 24 h). A concurrent request with the same key waits for the holder to finish, then
answers ``duplicate`` with the same id; a different body under the same key is a conflict.
If Redis is unreachable the request goes on without it and the database constraint decides.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Sequence

import redis
from django.conf import settings

from config.redis import get_redis

logger = logging.getLogger(__name__)

PENDING_TTL_SECONDS = 60
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
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
    outcome: str = ""


@dataclass(frozen=True)
class KeyRequest:
    key: str
    fingerprint: str
    proposed_id: uuid.UUID


def _redis_key(client_id: int, key: str) -> str:
    return f"idem:{client_id}:{key}"


def _pending(request: KeyRequest) -> str:
    return f"p|{request.proposed_id}|{request.fingerprint}"


def _judge(value: bytes | None, request: KeyRequest) -> Reservation | None:
    """What a stored value means for ``request``; None means wait (or retry the SET)."""
    if value is None:
        return None
    state, notification_id, fingerprint, *rest = value.decode().split("|")
    if fingerprint != request.fingerprint:
        return Reservation(Verdict.CONFLICT)
    if state == "d":
        return Reservation(Verdict.DUPLICATE, uuid.UUID(notification_id), rest[0] if rest else "")
    return None


StoredLookup = Callable[[Sequence[KeyRequest]], dict[str, tuple[uuid.UUID, str, str]]]


def reserve(
    client_id: int, requests: Sequence[KeyRequest], lookup_stored: StoredLookup | None = None
) -> list[Reservation] | None:
    """Reserve every key (pipelined); None when Redis is unavailable.

    ``lookup_stored`` answers, for keys another request holds, whether the database already
    has their notification ``{key: (id, fingerprint, outcome)}``: the holder may have
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
        while waiting:
            pipe = client.pipeline(transaction=False)
            for i in waiting:
                pipe.set(_redis_key(client_id, requests[i].key), _pending(requests[i]), nx=True, ex=PENDING_TTL_SECONDS)
            taken = pipe.execute()
            lost = []
            for i, ok in zip(waiting, taken):
                if ok:
                    results[i] = Reservation(Verdict.OWNED, requests[i].proposed_id)
                else:
                    lost.append(i)
            if not lost:
                break
            pipe = client.pipeline(transaction=False)
            for i in lost:
                pipe.get(_redis_key(client_id, requests[i].key))
            values = pipe.execute()
            waiting = []
            for i, value in zip(lost, values):
                judged = _judge(value, requests[i])
                if judged is None:
                    waiting.append(i)
                else:
                    results[i] = judged
            if waiting and lookup_stored is not None:
                stored = lookup_stored([requests[i] for i in waiting])
                still = []
                for i in waiting:
                    hit = stored.get(requests[i].key)
                    if hit is None:
                        still.append(i)
                    elif hit[1] == requests[i].fingerprint:
                        results[i] = Reservation(Verdict.DUPLICATE, hit[0], hit[2])
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
        release(client_id, [(requests[i], results[i]) for i in range(len(requests)) if results[i]])
        return None
    return results  # type: ignore[return-value]


def finalize(client_id: int, done: Sequence[tuple[KeyRequest, uuid.UUID, str]]) -> None:
    """Record finished notifications so later requests answer ``duplicate`` for 24 h."""
    client = get_redis()
    if client is None or not done:
        return
    try:
        pipe = client.pipeline(transaction=False)
        for request, notification_id, outcome in done:
            pipe.set(
                _redis_key(client_id, request.key),
                f"d|{notification_id}|{request.fingerprint}|{outcome}",
                ex=settings.IDEMPOTENCY_TTL_SECONDS,
            )
        pipe.execute()
    except redis.RedisError:
        # The pending values expire; the database constraint answers repeats meanwhile.
        logger.warning("could not record %d idempotency keys as done", len(done), exc_info=True)


def release(client_id: int, held: Sequence[tuple[KeyRequest, Reservation | None]]) -> None:
    """Give back keys this request reserved but did not use (its work failed)."""
    client = get_redis()
    owned = [request for request, reservation in held if reservation and reservation.verdict is Verdict.OWNED]
    if client is None or not owned:
        return
    try:
        script = client.register_script(_RELEASE)
        pipe = client.pipeline(transaction=False)
        for request in owned:
            script(keys=[_redis_key(client_id, request.key)], args=[_pending(request)], client=pipe)
        pipe.execute()
    except redis.RedisError:
        logger.warning("could not release %d idempotency keys", len(owned), exc_info=True)
