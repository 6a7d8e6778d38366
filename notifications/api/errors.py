"""Every API error is JSON naming the field and the problem: ``{status, code, message, errors}``."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from pydantic import ValidationError
from rest_framework import exceptions as drf
from rest_framework.response import Response

from notifications.errors import ApiError, FieldProblem
from notifications.schemas import PATTERN_MESSAGES

logger = logging.getLogger(__name__)

_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "json_invalid": "is not valid JSON",
    "json_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
}


def _path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def validation_error(exc: ValidationError) -> ApiError:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(p for p in error["loc"] if p not in ("function-after",))
        kind = error["type"]
        path = _path(loc) or "body"
        message = _MESSAGES.get(kind, error["msg"])
        field = next((part for part in reversed(loc) if isinstance(part, str)), "")
        if kind == "string_pattern_mismatch" and field in PATTERN_MESSAGES:
            kind, message = PATTERN_MESSAGES[field]
        problems.append(FieldProblem(path, kind, message))
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return ApiError(400, "invalid_request", f"{first.field}: {first.message}{more}", problems)


def _from_drf(exc: drf.APIException) -> ApiError:
    codes = {
        drf.NotAuthenticated: ("not_authenticated", "an API key is required: Authorization: Bearer <key>"),
        drf.AuthenticationFailed: ("authentication_failed", None),
        drf.PermissionDenied: ("forbidden", None),
        drf.NotFound: ("not_found", "not found"),
        drf.MethodNotAllowed: ("method_not_allowed", None),
        drf.UnsupportedMediaType: ("unsupported_media_type", "send the body as application/json"),
        drf.ParseError: ("invalid_json", None),
        drf.Throttled: ("rate_limited", None),
    }
    code, message = next((v for k, v in codes.items() if isinstance(exc, k)), ("error", None))
    return ApiError(exc.status_code, code, message or str(exc.detail))


def to_api_error(exc: Exception) -> ApiError | None:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValidationError):
        return validation_error(exc)
    if isinstance(exc, drf.APIException):
        return _from_drf(exc)
    if isinstance(exc, Http404):
        return ApiError(404, "not_found", "not found")
    if isinstance(exc, PermissionDenied):
        return ApiError(403, "forbidden", "forbidden")
    if isinstance(exc, RequestDataTooBig):
        return ApiError(413, "body_too_large", "the request body is too large")
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("database unavailable: %s", type(exc.__cause__ or exc).__name__)
        return ApiError(503, "storage_unavailable", "the notification store is unavailable; retry later")
    if isinstance(exc, DataError):
        return ApiError(400, "invalid_value", "a value cannot be stored (too long, or not representable)")
    if isinstance(exc, IntegrityError):
        return ApiError(409, "conflict", "the request conflicts with stored data; retry")
    return None


def exception_handler(exc, context):
    error = to_api_error(exc)
    if error is None:
        return None  # a bug: let Django log it and answer 500
    response = Response(error.as_dict(), status=error.status)
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def api_not_found(request, exception=None):
    """JSON 404 for unknown URLs under /api/; the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(ApiError(404, "not_found", "no such endpoint").as_dict(), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)
