"""API-key bearer authentication and scope checks for the service API."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission

from notifications.services.api_keys import authenticate_key
from notifications.services.catalog import ClientInfo


class ApiPrincipal:
    """``request.user`` for a calling service."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, client: ClientInfo):
        self.client = client

    def __str__(self) -> str:
        return f"api client {self.client.name}"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthenticationFailed("the Authorization header must be 'Bearer <API key>'")
        client = authenticate_key(key.strip())
        if client is None:
            raise AuthenticationFailed("invalid or revoked API key")
        return ApiPrincipal(client), None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class HasScope(BasePermission):
    """The view's ``required_scopes[method]`` must be among the client's scopes."""

    message = "this API key lacks the scope this endpoint needs"

    def has_permission(self, request, view) -> bool:
        principal = request.user
        if not isinstance(principal, ApiPrincipal):
            return False
        scope = getattr(view, "required_scopes", {}).get(request.method)
        if scope is None:
            return True
        if scope in principal.client.scopes:
            return True
        self.message = f"this API key lacks the '{scope}' scope"
        return False


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "notifications.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer nk_...`"}
