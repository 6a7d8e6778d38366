"""Every API error is JSON naming the field and the problem: ``{status, code, message, errors}``.

This is the one place that knows HTTP status codes: services raise domain errors
(``notifications.errors``), whose problems name a field relative to one request item;
here they become a status and a JSON path (``items[3].data.name`` in a bulk request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from pydantic import ValidationError
from rest_framework import exceptions as drf
from rest_framework.response import Response

from notifications.errors import Conflict, DomainError, InvalidRequest, NotFound, NotPermitted, Problem, Unavailable
from notifications.schemas import PATTERN_MESSAGES

logger = logging.getLogger(__name__)

STATUS_OF: dict[type[DomainError], int] = {
    InvalidRequest: 400,
    NotPermitted: 403,
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
}

_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "json_invalid": "is not valid JSON",
    "json_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
}

FieldPath = Callable[[Problem], str]


def single_path(problem: Problem) -> str:
    return problem.field


def item_path(problem: Problem) -> str:
    return f"items[{problem.item}].{problem.field}" if problem.item is not None else problem.field


@dataclass
class ApiError(Exception):
    """An HTTP error answer. Built by the API layer only."""

    status: int
    code: str
    message: str
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (field, code, message)

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "errors": [{"field": f, "code": c, "message": m} for f, c, m in self.errors],
        }

    @classmethod
    def from_domain(cls, error: DomainError, path: FieldPath = single_path) -> ApiError:
        status = next((code for kind, code in STATUS_OF.items() if isinstance(error, kind)), 500)
        errors = [(path(p), p.code, p.message) for p in error.problems]
        message = f"{errors[0][0]}: {errors[0][2]}" if errors else error.message
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        return cls(status, error.code, message, errors)


def validation_error(exc: ValidationError) -> ApiError:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(p for p in error["loc"] if p not in ("function-after",))
        kind = error["type"]
        path = _path(loc) or "body"
        message = _MESSAGES.get(kind, error["msg"])
        name = next((part for part in reversed(loc) if isinstance(part, str)), "")
        if kind == "string_pattern_mismatch" and name in PATTERN_MESSAGES:
            kind, message = PATTERN_MESSAGES[name]
        problems.append((path, kind, message))
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return ApiError(400, "invalid_request", f"{problems[0][0]}: {problems[0][2]}{more}", problems)


def _path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


_DRF_CODES = {
    drf.NotAuthenticated: ("not_authenticated", "an API key is required: Authorization: Bearer <key>"),
    drf.AuthenticationFailed: ("authentication_failed", None),
    drf.PermissionDenied: ("forbidden", None),
    drf.NotFound: ("not_found", "not found"),
    drf.MethodNotAllowed: ("method_not_allowed", None),
    drf.NotAcceptable: ("not_acceptable", "this API answers application/json"),
    drf.UnsupportedMediaType: ("unsupported_media_type", "send the body as application/json (UTF-8)"),
    drf.ParseError: ("invalid_json", None),
    drf.Throttled: ("rate_limited", None),
}


def _from_drf(exc: drf.APIException) -> ApiError:
    code, message = next((v for k, v in _DRF_CODES.items() if isinstance(exc, k)), ("error", None))
    return ApiError(exc.status_code, code, message or str(exc.detail))


def to_api_error(exc: Exception) -> ApiError | None:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DomainError):
        return ApiError.from_domain(exc)
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
    if error.status == 503:
        response["Retry-After"] = "1"
    return response


def api_bad_request(request, exception=None):
    """JSON 400 for requests Django refuses before any view (a bad Host header, a form over
    DATA_UPLOAD_MAX_MEMORY_SIZE) under /api/; the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(ApiError(400, "bad_request", "the request is malformed").as_dict(), status=400)
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def api_server_error(request):
    """JSON 500 under /api/ (the error is logged by Django); the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(ApiError(500, "internal_error", "an internal error occurred").as_dict(), status=500)
    from django.views.defaults import server_error

    return server_error(request)


def api_not_found(request, exception=None):
    """JSON 404 for unknown URLs under /api/; the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(ApiError(404, "not_found", "no such endpoint").as_dict(), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)
