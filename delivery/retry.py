"""Retry policy per channel (seed 004): exponential backoff with jitter, then dead letter.

``settings.RETRY_POLICIES`` keeps the seed's names. ``max_retries`` counts the retries after
the first attempt, so a channel is attempted ``max_retries + 1`` times in all; the delivery
row's ``attempts`` counts attempts (claims), which is what :func:`max_attempts` compares with.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from django.conf import settings


def max_attempts(channel: str) -> int:
    """Attempts in all: the first one and the policy's retries."""
    return settings.RETRY_POLICIES[channel]["max_retries"] + 1


def backoff_seconds(
    channel: str,
    attempts_made: int,
    rand: Callable[[], float] = random.random,
    *,
    retry_after: float | None = None,
) -> float:
    """Delay before the next attempt after ``attempts_made`` attempts (1 = after the first).

    The seed's ``initial_delay x multiplier^n`` (n = retries already made), capped at
    ``max_delay``, then spread by +-``jitter`` of itself so a batch that failed together does
    not come back together. A provider's ``Retry-After`` is a floor: it knows when it will take
    the message again, and retrying earlier only burns an attempt on a certain refusal.
    """
    policy = settings.RETRY_POLICIES[channel]
    delay = min(policy["initial_delay"] * policy["multiplier"] ** (attempts_made - 1), policy["max_delay"])
    delay *= 1 + policy["jitter"] * (2 * rand() - 1)
    if retry_after is not None and retry_after > delay:
        return float(retry_after)
    return delay
