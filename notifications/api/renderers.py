"""JSON answers: plain data through orjson (datetimes RFC 3339, UTC written as Z). With
``settings.API_VALIDATE_RESPONSES`` on, each answer is checked against the model its operation
documents (see notifications.api.openapi)."""

from __future__ import annotations

import orjson
from django.conf import settings
from rest_framework.renderers import JSONRenderer

from notifications.api.openapi import check_response


def _fallback(value):
    return str(value)


class FastJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        body = b"" if data is None else orjson.dumps(data, default=_fallback, option=orjson.OPT_UTC_Z)
        if settings.API_VALIDATE_RESPONSES and renderer_context and "response" in renderer_context:
            request = renderer_context["request"]
            method = "GET" if request.method == "HEAD" else request.method
            check_response(renderer_context["view"], method, renderer_context["response"].status_code, body or None)
        return body
