"""End-user token authentication for ``/api/v1/me/`` (the bell, the inbox): not API keys.

The token (``notifications.services.user_tokens``) comes as ``Authorization: Bearer <token>``,
or as ``?token=`` where a browser cannot set headers (``EventSource`` for the SSE stream).
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from notifications.services import user_tokens


class EndUser:
    """``request.user`` for an end user holding a token."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, user_id: str):
        self.user_id = user_id

    def __str__(self) -> str:
        return "end user"


def token_from(meta: dict, query: dict) -> str | None:
    header = meta.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise user_tokens.InvalidUserToken("malformed Authorization header")
        return token.strip()
    return query.get("token") or None


def user_for(meta: dict, query: dict) -> str | None:
    """The user id of the request's token; None without one; InvalidUserToken for a bad one."""
    token = token_from(meta, query)
    return None if token is None else user_tokens.verify(token)


class UserTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        try:
            user_id = user_for(request.META, request.GET)
        except user_tokens.InvalidUserToken:
            raise AuthenticationFailed("invalid or expired user token") from None
        return None if user_id is None else (EndUser(user_id), None)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="user"'


class UserTokenScheme(OpenApiAuthenticationExtension):
    target_class = "notifications.api.user_auth.UserTokenAuthentication"
    name = "UserToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "An end-user token from `POST /api/v1/recipients/{user_id}/token`"}  # fmt: skip
