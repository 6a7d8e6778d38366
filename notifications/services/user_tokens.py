"""Short-lived tokens for end users (the bell, the inbox, preferences): JWT, HS256.

A platform's backend asks for a token for one of its users (``POST
/api/v1/recipients/{user_id}/token``, or ``manage.py issue_user_token``) and hands it to that
user's browser or app. The token names the user (``sub``), its audience and an expiry; it
grants that user's own data and nothing else.

Signing keys come from settings: ``USER_TOKEN_KEYS`` (newest first). Tokens are signed with
the first; any of them verifies, so a key can be rotated without logging everyone out: put
the new key first, keep the old one second for one token lifetime, then drop it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from django.conf import settings

from notifications import rules

AUDIENCE = "notify:user"
ALGORITHM = "HS256"
_LEEWAY_SECONDS = 5  # clock skew between the servers that sign and verify


class InvalidUserToken(Exception):
    """The token is missing, malformed, forged, expired or for another audience. The reason is
    for logs and close codes, never for users to tell which."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    user_id: str
    expires_at: int  # unix seconds


def issue(user_id: str, *, ttl_seconds: int | None = None) -> IssuedToken:
    rules.user_id(user_id)
    now = int(time.time())
    ttl = ttl_seconds if ttl_seconds is not None else settings.USER_TOKEN_TTL_SECONDS
    if not 0 < ttl <= settings.USER_TOKEN_MAX_TTL_SECONDS:
        raise ValueError(f"a token lives between 1 and {settings.USER_TOKEN_MAX_TTL_SECONDS} seconds")
    claims = {"sub": user_id, "aud": AUDIENCE, "iat": now, "exp": now + ttl}
    token = jwt.encode(claims, settings.USER_TOKEN_KEYS[0], algorithm=ALGORITHM)
    return IssuedToken(token, user_id, now + ttl)


def verify(token: str) -> str:
    """The user id the token was issued for; raises InvalidUserToken otherwise."""
    if not token or len(token) > 4096:
        raise InvalidUserToken("missing or oversized token")
    last_error: Exception | None = None
    for key in settings.USER_TOKEN_KEYS:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["sub", "exp", "aud"]},
            )
        except jwt.InvalidSignatureError as exc:
            last_error = exc
            continue  # perhaps signed with another (older or newer) key
        except jwt.PyJWTError as exc:
            raise InvalidUserToken(type(exc).__name__) from None
        user_id = claims["sub"]
        try:
            return rules.user_id(user_id)
        except rules.RuleViolation:
            raise InvalidUserToken("invalid subject") from None
    raise InvalidUserToken(type(last_error).__name__ if last_error else "no signing key")
