"""Request bodies (pydantic models) into the send service's domain requests, and its results
into response bodies: plain dicts shaped as the response models in notifications.schemas
(orjson serializes them; the renderer checks them against those models when
``settings.API_VALIDATE_RESPONSES`` is on)."""

from __future__ import annotations

from collections.abc import Sequence

from notifications.api.errors import ApiError, FieldPath
from notifications.errors import InvalidRequest, Problem
from notifications.schemas import SendNotificationRequest
from notifications.services.sending import ChannelPlan, ContactUpdate, SendRequest, SendResult


def send_requests(bodies: Sequence[SendNotificationRequest]) -> list[SendRequest]:
    """Domain requests; raises InvalidRequest for items naming no user or two different ones."""
    requests, problems = [], []
    for index, body in enumerate(bodies):
        inline = body.recipient
        if body.user_id is None and inline is None:
            problems.append(Problem("user_id", "missing_user", "give user_id or recipient", index))
            continue
        if body.user_id is not None and inline is not None and inline.user_id != body.user_id:
            problems.append(Problem("recipient.user_id", "user_mismatch", "user_id and recipient.user_id differ", index))
            continue
        contact = None
        if inline is not None:
            contact = ContactUpdate(email=inline.email, phone=inline.phone, locale=inline.locale, timezone=inline.timezone)
        requests.append(
            SendRequest(
                user_id=body.user_id if body.user_id is not None else inline.user_id,
                type_key=body.type,
                idempotency_key=body.idempotency_key,
                data=body.data,
                channels=tuple(body.channels) if body.channels is not None else None,
                priority=body.priority,
                send_at=body.send_at,
                contact=contact,
            )
        )
    if problems:
        raise InvalidRequest.of(problems)
    return requests


def _channels(plans: list[ChannelPlan] | None) -> list[dict]:
    return [{"channel": p.channel, "status": p.status, "reason": p.reason} for p in plans or ()]


def send_response(result: SendResult) -> dict:
    """A SendNotificationResponse body; the item's error, if any, is raised as the answer."""
    if result.error is not None:
        raise ApiError.from_domain(result.error)
    return {"id": result.notification_id, "outcome": result.outcome, "channels": _channels(result.channels)}


def bulk_response(results: list[SendResult], path: FieldPath) -> dict:
    """A BulkSendResponse body: one result per item, in request order."""
    items = []
    accepted = duplicates = failed = 0
    for index, result in enumerate(results):
        if result.error is not None:
            failed += 1
            error = ApiError.from_domain(result.error, lambda p, i=index: path(p.at(i)))
            items.append({"index": index, "error": error.as_dict()})
            continue
        if result.duplicate:
            duplicates += 1
        else:
            accepted += 1
        items.append(
            {"index": index, "id": result.notification_id, "outcome": result.outcome, "channels": _channels(result.channels)}
        )
    return {"accepted": accepted, "duplicates": duplicates, "failed": failed, "results": items}
