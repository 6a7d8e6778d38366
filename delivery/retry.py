"""Retry policy per channel: exponential backoff with jitter, then dead letter."""

from __future__ import annotations

import random
from collections.abc import Callable

from django.conf import settings


def max_attempts(channel: str) -> int:
    return settings.RETRY_POLICIES[channel]["max_attempts"]


def backoff_seconds(channel: str, attempts_made: int, rand: Callable[[], float] = random.random) -> float:
    """Delay before the next attempt after ``attempts_made`` attempts (1 = after the first)."""
    policy = settings.RETRY_POLICIES[channel]
    delay = min(policy["base"] * policy["factor"] ** (attempts_made - 1), policy["cap"])
    jitter = settings.RETRY_JITTER
    return delay * (1 + jitter * (2 * rand() - 1))
