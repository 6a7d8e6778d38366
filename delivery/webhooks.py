"""Provider webhooks over HTTP: thin views over ``delivery.services.provider_webhooks`` (who
sent it, what it says) and ``delivery.services.provider_events`` (what it changes).

No API key and no CSRF token: the provider's signature is the authentication. Answers:
403 unsigned/forged/stale (nothing read or changed), 400 signed but malformed (the problem
named), 411/413 from the headers before the body is read, else 200 — also for events about
deliveries we do not know, so the provider stops retrying them (they are counted).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import Counter as MetricCounter

from delivery.services import provider_webhooks as webhooks
from delivery.services.provider_events import apply_events

logger = logging.getLogger(__name__)

EVENTS = MetricCounter(
    "notify_provider_webhook_events",
    "Provider webhook events by provider and outcome (applied, unchanged, unknown, mismatched, skipped)",
    ["provider", "outcome"],
)
REQUESTS_REFUSED = MetricCounter(
    "notify_provider_webhook_refused",
    "Provider webhook requests refused, by provider and status",
    ["provider", "status"],
)


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"status": status, "code": code, "message": message}, status=status)


@method_decorator(csrf_exempt, name="dispatch")
class ProviderWebhookView(View, ABC):
    http_method_names = ["post"]
    provider = ""
    # Read by config.asgi_server too, so Daphne refuses a larger body before reading it.
    body_limit_setting = "WEBHOOK_MAX_BODY_BYTES"

    def post(self, request: HttpRequest) -> JsonResponse:
        refused = _body_refusal(request.META, getattr(settings, self.body_limit_setting))
        if refused is not None:
            REQUESTS_REFUSED.labels(self.provider, refused.status_code).inc()
            return refused
        try:
            events, skipped = self.events(request)
        except webhooks.WebhookError as error:
            REQUESTS_REFUSED.labels(self.provider, error.status).inc()
            logger.warning("%s webhook refused (%d): %s", self.provider, error.status, error)
            return _error(error.status, error.code, str(error))
        counts = apply_events(events)
        if skipped:
            counts["skipped"] = skipped
        for outcome, count in counts.items():
            EVENTS.labels(self.provider, outcome).inc(count)
        # Counts only: events carry addresses, and their ids lead to one.
        logger.info(
            "%s webhook: %s", self.provider, ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "empty"
        )
        return JsonResponse({"received": len(events) + skipped, **counts})

    @abstractmethod
    def events(self, request: HttpRequest) -> tuple[list, int]:
        """Verify the request's signature and parse it: (events to apply, events skipped)."""


class SendGridEventsView(ProviderWebhookView):
    provider = "sendgrid"

    def events(self, request: HttpRequest) -> tuple[list, int]:
        text = webhooks.verify_sendgrid(
            request.read(),
            request.headers.get(webhooks.SENDGRID_SIGNATURE_HEADER),
            request.headers.get(webhooks.SENDGRID_TIMESTAMP_HEADER),
        )
        return webhooks.sendgrid_events(text)


class TwilioStatusView(ProviderWebhookView):
    provider = "twilio"

    def events(self, request: HttpRequest) -> tuple[list, int]:
        webhooks.verify_twilio(
            request.get_full_path(), request.POST, request.headers.get(webhooks.TWILIO_SIGNATURE_HEADER)
        )
        event = webhooks.twilio_event(request.GET, request.POST)
        return ([event], 0) if event is not None else ([], 1)


def _body_refusal(meta: dict, limit: int) -> JsonResponse | None:
    """411 for a chunked body, 413 for one over ``limit``: from the headers, before reading."""
    if meta.get("HTTP_TRANSFER_ENCODING"):
        return _error(411, "length_required", "send the body with a Content-Length header (not chunked)")
    raw = meta.get("CONTENT_LENGTH") or "0"
    if not raw.isdigit():
        return _error(400, "invalid_content_length", "the Content-Length header is not a number")
    if int(raw) > limit:
        return _error(
            413, "body_too_large", f"the request body is {int(raw)} bytes; this endpoint takes at most {limit}"
        )
    return None


urlpatterns = [
    path("sendgrid/events", SendGridEventsView.as_view(), name="webhook-sendgrid-events"),
    path("twilio/status", TwilioStatusView.as_view(), name="webhook-twilio-status"),
]
