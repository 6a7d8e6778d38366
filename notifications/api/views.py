"""The service API: thin views that parse, call a service and shape the answer."""

from __future__ import annotations

from typing import TypeVar

from django.conf import settings
from django.utils.http import parse_header_parameters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from pydantic import BaseModel
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from config.sharding import USER_ID_PATTERN
from delivery.services import devices
from notifications import rules
from notifications.api.auth import HasScope
from notifications.api.convert import bulk_response, send_requests, send_response
from notifications.api.errors import ApiError, item_path
from notifications.api.inbox_schemas import UserTokenRequest, UserTokenResponse
from notifications.api.openapi import errors, responds
from notifications.errors import DomainError
from notifications.schemas import (
    BulkSendRequest,
    BulkSendResponse,
    DeviceDeleteRequest,
    DeviceListResponse,
    DeviceOut,
    DeviceRequest,
    NotificationStatusResponse,
    RecipientRequest,
    RecipientResponse,
    SendNotificationRequest,
    SendNotificationResponse,
)
from notifications.services import recipients, user_tokens
from notifications.services.send import send, send_one
from notifications.services.sending import Sender
from notifications.services.status import notification_status

M = TypeVar("M", bound=BaseModel)

# JSON is UTF-8 (RFC 8259); a charset parameter may say so, in any spelling of the name.
_UTF8_NAMES = frozenset({"utf-8", "utf8"})


class ServiceApiView(APIView):
    # (Comments, not a docstring: drf-spectacular would publish it as every operation's text.)
    # Every request is authenticated and authorized before anything else is looked at; then
    # its Accept header (406), its body's framing and size from the headers (411, 413), and,
    # when the body is parsed, its media type (415) and content (400).

    permission_classes = [IsAuthenticated, HasScope]
    required_scopes: dict[str, str] = {}
    # No OPTIONS metadata: an undocumented method is a 405 like any other.
    metadata_class = None
    # The setting that holds the largest body this endpoint takes (config.asgi_server reads
    # it too, for servers that judge a body before Django sees the request).
    body_limit_setting = "API_MAX_BODY_BYTES"
    # Without credentials the answer is a 401 whatever the body says: a server that reads
    # bodies before Django sees the request (Daphne) need not read it.
    body_needs_authorization = True

    def initial(self, request, *args, **kwargs) -> None:
        # DRF's order, except that content negotiation (406) comes after authentication and
        # permissions: a caller learns nothing about an endpoint before it proves who it is.
        self.format_kwarg = self.get_format_suffix(**kwargs)
        self.perform_authentication(request)
        self.check_permissions(request)
        self.check_throttles(request)
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(request)
        request.version, request.versioning_scheme = self.determine_version(request, *args, **kwargs)
        check_body_size(request.META, getattr(settings, self.body_limit_setting))

    def parse(self, request, model: type[M]) -> M:
        check_media_type(request.META.get("CONTENT_TYPE", ""))
        # read(), not .body: this endpoint's own limit was checked above, and Django's
        # DATA_UPLOAD_MAX_MEMORY_SIZE is for its forms.
        return model.model_validate_json(request.read())

    @property
    def client(self):
        return self.request.user.client

    @property
    def sender(self) -> Sender:
        return Sender.for_client(self.client)


def check_body_size(meta: dict, limit: int) -> None:
    """411 for a body without Content-Length, 413 for one over ``limit``: from the headers,
    before anything reads the body."""
    if meta.get("HTTP_TRANSFER_ENCODING"):
        raise ApiError(411, "length_required", "send the body with a Content-Length header (not chunked)")
    raw = meta.get("CONTENT_LENGTH") or "0"
    if not raw.isdigit():
        raise ApiError(400, "invalid_content_length", "the Content-Length header is not a number")
    if int(raw) > limit:
        raise ApiError(413, "body_too_large", f"the request body is {int(raw)} bytes; this endpoint takes at most {limit}")


def check_media_type(content_type: str) -> None:
    media_type, params = parse_header_parameters(content_type)
    charset = params.get("charset")
    if media_type != "application/json" or (charset is not None and charset.lower() not in _UTF8_NAMES):
        shown = content_type[:100] or "none"
        raise ApiError(415, "unsupported_media_type", f"send the body as application/json (UTF-8), not {shown}")


def _user_id(raw: str) -> str:
    if not USER_ID_PATTERN.match(raw):
        raise ApiError(400, "invalid_request", f"user_id: {rules.USER_ID_MESSAGE}", [("user_id", "invalid_user_id", rules.USER_ID_MESSAGE)])
    return raw


class SendNotificationView(ServiceApiView):
    required_scopes = {"POST": "send"}
    body_limit_setting = "API_SEND_MAX_BODY_BYTES"

    @responds(
        {202: SendNotificationResponse, **errors(409, 415)},
        operation_id="send_notification",
        summary="Send a notification",
        request=SendNotificationRequest,
    )
    def post(self, request):
        (send_request,) = send_requests([self.parse(request, SendNotificationRequest)])
        return Response(send_response(send_one(self.sender, send_request)), status=202)


class BulkSendView(ServiceApiView):
    required_scopes = {"POST": "send"}
    body_limit_setting = "API_BULK_MAX_BODY_BYTES"

    @responds(
        {202: BulkSendResponse, **errors(409, 415)},
        operation_id="send_notifications_bulk",
        summary="Send up to 1000 notifications",
        description="Results come back in request order. Invalid or forbidden items reject the whole request; "
        "an item whose idempotency key conflicts, or whose shard is unavailable, has an `error` in its result.",
        request=BulkSendRequest,
    )
    def post(self, request):
        bulk = self.parse(request, BulkSendRequest)
        try:
            results = send(self.sender, send_requests(bulk.items))
        except DomainError as error:
            raise ApiError.from_domain(error, item_path) from None
        return Response(bulk_response(results, item_path), status=202)


class NotificationDetailView(ServiceApiView):
    required_scopes = {"GET": "status"}

    @responds(
        {200: NotificationStatusResponse, **errors(404)},
        operation_id="get_notification",
        summary="Status of a notification and of each of its channels",
        parameters=[OpenApiParameter("notification_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
    )
    def get(self, request, notification_id: str):
        status = notification_status(self.sender, notification_id)
        if status is None:
            raise ApiError(404, "not_found", "no such notification")
        return Response(status)


# A user id that does not match is answered 400 naming the field; the pattern is published.
_USER_ID_PARAM = OpenApiParameter(
    "user_id", str, OpenApiParameter.PATH, description="The platform's user id", pattern=USER_ID_PATTERN.pattern
)


class RecipientView(ServiceApiView):
    required_scopes = {"GET": "recipients", "PUT": "recipients"}

    @responds({200: RecipientResponse, **errors(404)}, operation_id="get_recipient", parameters=[_USER_ID_PARAM])
    def get(self, request, user_id: str):
        recipient = recipients.get_recipient(_user_id(user_id))
        if recipient is None:
            raise ApiError(404, "not_found", "no such recipient")
        return Response(recipients.recipient_document(recipient))

    @responds(
        {200: RecipientResponse, 201: RecipientResponse, **errors(404, 409, 415)},
        operation_id="put_recipient",
        summary="Create or replace a recipient's contact record",
        parameters=[_USER_ID_PARAM],
        request=RecipientRequest,
    )
    def put(self, request, user_id: str):
        user_id = _user_id(user_id)
        body = self.parse(request, RecipientRequest)
        if body.user_id is not None and body.user_id != user_id:
            raise ApiError(400, "invalid_request", "user_id: differs from the user id in the path",
                           [("user_id", "user_mismatch", "differs from the user id in the path")])
        record = recipients.clean_contact(body.model_dump(include=set(recipients.ContactRecord.__dataclass_fields__)))
        recipient, created = recipients.put_recipient(user_id, record)
        return Response(recipients.recipient_document(recipient), status=201 if created else 200)


class RecipientDevicesView(ServiceApiView):
    required_scopes = {"GET": "recipients", "POST": "recipients", "DELETE": "recipients"}

    @responds({200: DeviceListResponse, **errors(404)}, operation_id="list_devices", parameters=[_USER_ID_PARAM])
    def get(self, request, user_id: str):
        return Response({"devices": [devices.device_document(d) for d in devices.list_devices(_user_id(user_id))]})

    @responds(
        {200: DeviceOut, 201: DeviceOut, **errors(404, 409, 415)},
        operation_id="register_device",
        summary="Register (or refresh) a push device token",
        parameters=[_USER_ID_PARAM],
        request=DeviceRequest,
    )
    def post(self, request, user_id: str):
        user_id = _user_id(user_id)
        body = self.parse(request, DeviceRequest)
        try:
            device, created = devices.register_device(user_id, platform=body.platform, token=body.token)
        except devices.InvalidDeviceToken as exc:
            raise ApiError(400, "invalid_request", f"token: {exc}", [("token", exc.code, str(exc))]) from None
        return Response(devices.device_document(device), status=201 if created else 200)

    @responds(
        {204: None, **errors(404, 415)},
        operation_id="remove_device",
        summary="Remove a push device token",
        parameters=[
            _USER_ID_PARAM,
            OpenApiParameter(
                "token", str, OpenApiParameter.QUERY, required=False,
                description='The token to remove; or send it as a JSON body, `{"token": "..."}`.',
            ),
        ],
    )
    def delete(self, request, user_id: str):
        user_id = _user_id(user_id)
        token = request.query_params.get("token")
        if not token and request.META.get("CONTENT_LENGTH", "0") in ("", "0"):
            raise ApiError(400, "invalid_request", "token: is required (in a JSON body or as ?token=)",
                           [("token", "missing", "is required (in a JSON body or as ?token=)")])
        if not token:
            token = self.parse(request, DeviceDeleteRequest).token
        if not devices.remove_device(user_id, token=token):
            raise ApiError(404, "not_found", "no such device")
        return Response(status=204)


class RecipientTokenView(ServiceApiView):
    required_scopes = {"POST": "tokens"}

    @responds(
        {201: UserTokenResponse, **errors(415)},
        operation_id="issue_user_token",
        summary="Issue a short-lived token for one of your users (the bell, the inbox API)",
        description="Hand it to that user's browser or app: it grants that user's own inbox, nothing else.",
        parameters=[_USER_ID_PARAM],
        request=UserTokenRequest,
    )
    def post(self, request, user_id: str):
        user_id = _user_id(user_id)
        ttl = None
        if request.META.get("CONTENT_LENGTH", "0") not in ("", "0"):
            ttl = self.parse(request, UserTokenRequest).ttl_seconds
        if ttl is not None and ttl > settings.USER_TOKEN_MAX_TTL_SECONDS:
            message = f"must be at most {settings.USER_TOKEN_MAX_TTL_SECONDS}"
            raise ApiError(400, "invalid_request", f"ttl_seconds: {message}", [("ttl_seconds", "too_long", message)])
        issued = user_tokens.issue(user_id, ttl_seconds=ttl)
        return Response({"token": issued.token, "user_id": issued.user_id, "expires_at": issued.expires_at}, status=201)
