"""A token bucket per provider in Redis: every worker process takes from the same bucket, so
the configured rate holds across processes and machines.

The bucket holds up to ``burst`` tokens (one second's worth by default) and refills at
``rate`` per second, by Redis's own clock (one clock for every worker). A drain takes as many
tokens as messages it may send now; when it gets none it does not sleep on its worker slot:
it rings again with a delay and leaves the rows queued. Without Redis, or for a provider
with no rate configured, there is no limit.
"""

from __future__ import annotations

import math

import redis
from django.conf import settings

from config.redis import get_redis

# KEYS: bucket. ARGV: rate/s, burst, wanted. Returns {taken, seconds until one more token}.
_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1e6
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or t
tokens = math.min(burst, tokens + math.max(0, t - at) * rate)
local taken = math.min(want, math.floor(tokens))
tokens = tokens - taken
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(t))
redis.call('EXPIRE', KEYS[1], 3600)
local wait = 0
if taken < want then wait = (1 - (tokens - math.floor(tokens))) / rate end
return {taken, tostring(wait)}
"""


def rate_of(provider: str) -> float | None:
    return settings.PROVIDER_RATES.get(provider)


def take(provider: str, wanted: int) -> tuple[int, float]:
    """(tokens taken, seconds until another is available): at most ``wanted``."""
    rate = rate_of(provider)
    client = get_redis()
    if not rate or client is None or wanted <= 0:
        return wanted, 0.0
    burst = max(1, math.ceil(settings.PROVIDER_BURST_SECONDS * rate))
    try:
        taken, wait = client.eval(_TAKE, 1, f"notify:bucket:{provider}", rate, burst, wanted)
    except redis.RedisError:
        return wanted, 0.0  # Redis down: the provider's own 429s still slow us down
    return int(taken), float(wait)


def wait_for_batch(provider: str, wait: float, batch: int) -> float:
    """After ``take`` found the bucket empty (``wait`` until one token): how long until it
    holds a worthwhile batch, RATE_LIMITED_BATCH_SECONDS of the rate (at most ``batch``)."""
    rate = rate_of(provider)
    if not rate:
        return wait
    tokens = max(1.0, min(float(batch), rate * settings.RATE_LIMITED_BATCH_SECONDS))
    return max(wait, tokens / rate)


def give_back(provider: str, count: int) -> None:
    """Return tokens taken for messages that were not sent (fewer rows than tokens)."""
    rate = rate_of(provider)
    client = get_redis()
    if not rate or client is None or count <= 0:
        return
    burst = max(1, math.ceil(settings.PROVIDER_BURST_SECONDS * rate))
    try:
        client.eval(
            "local v = tonumber(redis.call('HGET', KEYS[1], 'tokens') or ARGV[2]) "
            "redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tonumber(ARGV[2]), v + tonumber(ARGV[1])))) return 1",
            1,
            f"notify:bucket:{provider}",
            count,
            burst,
        )
    except redis.RedisError:
        pass


def level(provider: str) -> float | None:
    """Tokens in the bucket now (for operators and metrics), None without a limit."""
    client = get_redis()
    if not rate_of(provider) or client is None:
        return None
    try:
        value = client.hget(f"notify:bucket:{provider}", "tokens")
    except redis.RedisError:
        return None
    return float(value) if value is not None else None
