"""User-keyed sharding: buckets, the bucket-range map and routable IDs.

``bucket = stable_hash(user_id) % 1024``; settings map inclusive bucket ranges to database
aliases. Nothing hashes modulo the number of shards, so adding a shard means moving bucket
ranges (and their rows), never rehashing every user.

Every user-keyed ID is a UUIDv7 whose random bits carry the user's 10-bit bucket, so an ID
alone names its shard and IDs still sort by creation time.

This module is imported by settings, so it must not touch Django at import time.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
import uuid
from functools import lru_cache

BUCKETS = 1024
USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")

# UUIDv7 layout: 48-bit unix ms | ver(4) | rand_a(12) | var(2) | rand_b(62).
# rand_a holds the sub-millisecond fraction (RFC 9562 method 3) so IDs made in the same
# millisecond by one process still sort by time; the top 10 bits of rand_b hold the bucket.
_BUCKET_SHIFT = 52
_BUCKET_MASK = (BUCKETS - 1) << _BUCKET_SHIFT
# The module-level generator: CPython reseeds it in every forked child (a private
# random.Random() instance would repeat its parent's sequence in each worker).
_random_bits = random.getrandbits
_new_uuid = uuid.UUID.__new__
_set_slot = object.__setattr__


class ShardMapError(ValueError):
    pass


def bucket_for(user_id: str) -> int:
    digest = hashlib.blake2b(user_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def build_shard_map(aliases: list[str], spec: str | None = None) -> tuple[tuple[int, int, str], ...]:
    """Return ``((first_bucket, last_bucket, alias), ...)`` covering 0..1023 exactly once."""
    if not aliases:
        raise ShardMapError("at least one shard database is required")
    if spec:
        ranges = []
        for part in spec.split(","):
            try:
                span, alias = part.strip().split(":")
                first, last = (int(x) for x in span.split("-"))
            except ValueError as exc:
                raise ShardMapError(f"bad SHARD_BUCKET_MAP entry {part!r}; expected FIRST-LAST:ALIAS") from exc
            if alias not in aliases:
                raise ShardMapError(f"SHARD_BUCKET_MAP names unknown shard {alias!r}")
            ranges.append((first, last, alias))
    else:
        size, extra = divmod(BUCKETS, len(aliases))
        ranges, start = [], 0
        for index, alias in enumerate(aliases):
            end = start + size + (1 if index < extra else 0) - 1
            ranges.append((start, end, alias))
            start = end + 1
    ranges.sort()
    expected = 0
    for first, last, alias in ranges:
        if first != expected or last < first:
            raise ShardMapError(f"bucket ranges must cover 0-{BUCKETS - 1} without gaps or overlaps (at {first}-{last}:{alias})")
        expected = last + 1
    if expected != BUCKETS:
        raise ShardMapError(f"bucket ranges stop at {expected - 1}; they must reach {BUCKETS - 1}")
    return tuple(ranges)


@lru_cache(maxsize=1)
def _bucket_table() -> tuple[str, ...]:
    from django.conf import settings

    table: list[str] = [""] * BUCKETS
    for first, last, alias in settings.SHARD_BUCKET_MAP:
        for bucket in range(first, last + 1):
            table[bucket] = alias
    return tuple(table)


def reset_shard_table() -> None:
    """Forget the cached bucket table (after settings change, e.g. in tests)."""
    _bucket_table.cache_clear()


def shard_aliases() -> list[str]:
    from django.conf import settings

    return list(settings.SHARD_ALIASES)


def shard_for_bucket(bucket: int) -> str:
    return _bucket_table()[bucket]


def shard_for_user(user_id: str) -> str:
    return _bucket_table()[bucket_for(user_id)]


def new_id(bucket: int) -> uuid.UUID:
    """A time-ordered UUIDv7 that carries ``bucket``."""
    nanos = time.time_ns()
    millis, remainder = divmod(nanos, 1_000_000)
    sub_ms = (remainder * 4096) // 1_000_000
    # IDs must be unique, not secret: 52 bits from the process PRNG (CPython reseeds it after
    # fork) instead of an os.urandom system call per ID, which cost ~10% of a bulk send.
    rand_b = _random_bits(_BUCKET_SHIFT)
    value = (
        (millis & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | sub_ms << 64
        | 0b10 << 62
        | bucket << _BUCKET_SHIFT
        | rand_b
    )
    # What UUID(int=value) ends with, without its argument checks (half the cost; four
    # IDs per notification). The value is built valid above.
    made = _new_uuid(uuid.UUID)
    _set_slot(made, "int", value)
    _set_slot(made, "is_safe", uuid.SafeUUID.unknown)
    return made


def new_id_for_user(user_id: str) -> uuid.UUID:
    return new_id(bucket_for(user_id))


def bucket_of_id(value: uuid.UUID | str) -> int:
    if not isinstance(value, uuid.UUID):
        value = uuid.UUID(str(value))
    return (value.int & _BUCKET_MASK) >> _BUCKET_SHIFT


def is_routable_id(value: uuid.UUID) -> bool:
    return value.version == 7 and value.variant == uuid.RFC_4122


def shard_for_id(value: uuid.UUID | str) -> str:
    return _bucket_table()[bucket_of_id(value)]


def parse_routable_id(raw: str) -> uuid.UUID | None:
    """The UUID in ``raw`` if it is one of our routable IDs, else None."""
    try:
        value = uuid.UUID(str(raw))
    except (TypeError, ValueError, AttributeError):
        return None
    return value if is_routable_id(value) else None
