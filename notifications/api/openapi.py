"""What each operation answers, declared once: drf-spectacular publishes it and, when
``settings.API_VALIDATE_RESPONSES`` is on, the renderer checks every answer against it.

Views build their answers as plain dicts (orjson serializes a 1000-item bulk answer in ~2.5 ms;
building and serializing pydantic objects costs 10-17 ms), so nothing but this check ties a
dict to the model the schema publishes. It is on in the test and embedded profiles: a drift
is a 500 there, and fails the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiResponse, extend_schema
from pydantic import BaseModel, ValidationError

from notifications.schemas import ErrorResponse

ResponseModels = Mapping[int, type[BaseModel] | None]

ERROR_DESCRIPTIONS = {
    400: "The request is invalid; `errors` names each field and its problem.",
    401: "No API key, or an invalid or revoked one (`WWW-Authenticate: Bearer`).",
    403: "This API key may not do this (a missing scope, a type or priority not granted).",
    404: "No such resource (or one this API key may not see).",
    405: "This method is not allowed on this path.",
    406: "The Accept header excludes application/json, the only type this API answers with.",
    409: "The request collides with stored data (an idempotency key used with another body, "
    "or the same key still in progress); retrying may succeed.",
    411: "A body sent without Content-Length (chunked transfer encoding is not accepted).",
    413: "The body is larger than this endpoint takes (judged from Content-Length, before reading it).",
    415: "The body is not application/json (UTF-8).",
    503: "A store the service needs is unavailable; retry after `Retry-After` seconds.",
}

# What any operation can answer: its input can be invalid, the caller unauthenticated or not
# allowed, the method wrong, the Accept header or the body's framing or size unacceptable,
# and a store down.
COMMON_ERRORS = (400, 401, 403, 405, 406, 411, 413, 503)


def errors(*statuses: int) -> dict[int, type[BaseModel]]:
    """The common error answers plus ``statuses``, all in the one error shape."""
    return {status: ErrorResponse for status in sorted({*COMMON_ERRORS, *statuses})}


def responds(responses: ResponseModels, **schema: Any) -> Callable:
    """Declare a view method's answers (status -> body model, None for no body) for both the
    OpenAPI schema and the response check; ``schema`` goes to drf-spectacular's extend_schema."""

    def decorate(method: Callable) -> Callable:
        method.response_models = dict(responses)
        published = {
            status: OpenApiResponse(model, description=ERROR_DESCRIPTIONS.get(status, HTTPStatus(status).phrase))
            for status, model in responses.items()
        }
        return extend_schema(responses=published, **schema)(method)

    return decorate


class ResponseDrift(AssertionError):
    """An answer that its operation does not document (a bug in the API, not in the request)."""


def models_for(view, method: str) -> ResponseModels:
    """The declared answers of the view's handler for ``method``; for a method the view does
    not have, the error answers every operation documents (405 among them)."""
    handler = getattr(view, method.lower(), None)
    declared = getattr(handler, "response_models", None)
    if declared is None:
        return errors()
    return declared


def check_response(view, method: str, status: int, body: bytes | None) -> None:
    """Raise ResponseDrift unless ``body`` is what ``view`` documents for ``status``."""
    declared = models_for(view, method)
    if status not in declared:
        raise ResponseDrift(f"{type(view).__name__} {method} answered {status}, which it does not document")
    model = declared[status]
    if model is None:
        if body:
            raise ResponseDrift(f"{type(view).__name__} {method} {status} documents no body but sent one")
        return
    try:
        # Strict: the JSON must have the published types (no "5" for an integer).
        model.model_validate_json(body or b"", strict=True)
    except ValidationError as exc:
        raise ResponseDrift(f"{type(view).__name__} {method} {status} does not match {model.__name__}: {exc}") from None


class PydanticModelSchema(OpenApiSerializerExtension):
    """Publish a pydantic model as its JSON schema: request bodies in validation mode (what
    is accepted), answers in serialization mode (what is sent). Nested models become
    components under their own names, once each."""

    target_class = "pydantic.BaseModel"
    match_subclasses = True
    priority = 1  # before drf-spectacular's contrib extension, which uses one mode for both

    def get_name(self, auto_schema, direction):
        return self.target.__name__

    def get_identity(self, auto_schema, direction):
        # The name, as for the nested models registered below: a model is one component
        # whether an operation names it or another model contains it.
        return self.target.__name__

    def map_serializer(self, auto_schema, direction):
        mode = "validation" if direction == "request" else "serialization"
        schema = self.target.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
        for name, sub_schema in schema.pop("$defs", {}).items():
            component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, object=name, schema=sub_schema)
            auto_schema.registry.register_on_missing(component)
        return schema
