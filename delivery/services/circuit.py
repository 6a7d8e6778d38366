"""A circuit breaker per provider, its state in Redis so every worker process shares it.

Closed: calls go through; consecutive failures are counted and a success resets the count.
After ``CIRCUIT_FAILURE_THRESHOLD`` consecutive failures it opens for
``CIRCUIT_COOLDOWN_SECONDS``: no calls; the channel's next provider takes over, or the
deliveries wait (deferred, not failed, not counted as attempts). Then half-open: one worker
wins the probe (a short-lived key), its call decides: success closes the circuit, failure
opens it again for another cool-down. Without Redis (the embedded profile) the circuit
never opens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from django.conf import settings

from config.redis import get_redis

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

# KEYS: failures, open_until, probe. ARGV: threshold, cooldown (s), probe ttl (s).
# Returns the state after the failure and whether this failure opened the circuit.
_RECORD_FAILURE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1e6
local failures = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 3600)
local probing = redis.call('DEL', KEYS[3]) == 1
if probing or failures >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], tostring(t + tonumber(ARGV[2])), 'EX', math.ceil(tonumber(ARGV[2])) + 3600)
  redis.call('SET', KEYS[1], 0, 'EX', 3600)
  return {'open', 1}
end
return {'closed', 0}
"""
# Returns {state, seconds until a call may be tried}.
_ALLOW = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1e6
local until_ = tonumber(redis.call('GET', KEYS[2]) or '0')
if t < until_ then
  return {'open', tostring(until_ - t)}
end
if until_ == 0 then
  return {'closed', '0'}
end
if redis.call('SET', KEYS[3], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  return {'half_open', '0'}
end
return {'open', '1'}
"""


@dataclass(frozen=True)
class Permission:
    allowed: bool
    state: str
    retry_in: float = 0.0  # seconds until a call may be tried, when not allowed


def _keys(provider: str) -> list[str]:
    base = f"notify:circuit:{provider}"
    return [f"{base}:failures", f"{base}:open_until", f"{base}:probe"]


def allow(provider: str) -> Permission:
    """May a call to ``provider`` be made now? In half-open state only the caller that wins
    the probe gets yes; the others are told to wait for its outcome."""
    client = get_redis()
    if client is None:
        return Permission(True, CLOSED)
    try:
        state, retry_in = client.eval(_ALLOW, 3, *_keys(provider), settings.PROVIDER_TIMEOUT_SECONDS * 2)
    except redis.RedisError:
        return Permission(True, CLOSED)  # no shared state: call, the provider's errors still count
    state = state.decode() if isinstance(state, bytes) else state
    return Permission(state != OPEN, state, float(retry_in))


def release_probe(provider: str) -> None:
    """The caller that won the half-open probe made no call after all: let another try."""
    client = get_redis()
    if client is not None:
        try:
            client.delete(_keys(provider)[2])
        except redis.RedisError:
            pass


def record_success(provider: str) -> None:
    client = get_redis()
    if client is None:
        return
    failures, open_until, probe = _keys(provider)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.delete(failures, open_until, probe)
            pipe.execute()
    except redis.RedisError:
        pass


def record_failure(provider: str) -> bool:
    """Count a failed call; True when it opened the circuit."""
    client = get_redis()
    if client is None:
        return False
    try:
        _, opened = client.eval(
            _RECORD_FAILURE,
            3,
            *_keys(provider),
            settings.CIRCUIT_FAILURE_THRESHOLD,
            settings.CIRCUIT_COOLDOWN_SECONDS,
        )
    except redis.RedisError:
        return False
    if opened:
        logger.warning("circuit of provider %s opened for %g s", provider, settings.CIRCUIT_COOLDOWN_SECONDS)
    return bool(opened)


def state(provider: str) -> str:
    """For operators and metrics: closed, open or half_open (without taking the probe)."""
    client = get_redis()
    if client is None:
        return CLOSED
    _, open_until, _ = _keys(provider)
    try:
        until, now = client.get(open_until), client.time()
    except redis.RedisError:
        return CLOSED
    if until is None:
        return CLOSED
    if now[0] + now[1] / 1e6 < float(until):
        return OPEN
    return HALF_OPEN
