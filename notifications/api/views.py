"""The service API: thin views that parse, call a service and shape the answer."""

from __future__ import annotations

from typing import TypeVar

from drf_spectacular.utils import OpenApiParameter, extend_schema
from pydantic import BaseModel
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from config.sharding import USER_ID_PATTERN
from delivery.services import devices
from notifications.api.auth import HasScope
from notifications.errors import ApiError, invalid
from notifications.schemas import (
    BulkSendRequest,
    BulkSendResponse,
    DeviceDeleteRequest,
    DeviceOut,
    DeviceRequest,
    ErrorResponse,
    NotificationStatusResponse,
    RecipientRequest,
    RecipientResponse,
    SendNotificationRequest,
    SendNotificationResponse,
)
from notifications.services import recipients
from notifications.services.send import ItemResult, send_notification, send_notifications
from notifications.services.status import notification_status

M = TypeVar("M", bound=BaseModel)

ERRORS = {
    400: ErrorResponse,
    401: ErrorResponse,
    403: ErrorResponse,
    404: ErrorResponse,
    409: ErrorResponse,
    503: ErrorResponse,
}


class ServiceApiView(APIView):
    permission_classes = [IsAuthenticated, HasScope]
    required_scopes: dict[str, str] = {}

    def parse(self, request, model: type[M]) -> M:
        if not (request.content_type or "").startswith("application/json"):
            raise UnsupportedMediaType(request.content_type or "none")
        return model.model_validate_json(request.body)

    @property
    def client(self):
        return self.request.user.client


def _user_id(raw: str) -> str:
    if not USER_ID_PATTERN.match(raw):
        raise invalid("user_id", "invalid_user_id", "must be 1-64 characters of letters, digits and _ . : @ -")
    return raw


def _item_body(result: ItemResult) -> dict:
    return {"id": result.notification_id, "outcome": result.outcome, "channels": result.channels or []}


class SendNotificationView(ServiceApiView):
    required_scopes = {"POST": "send"}

    @extend_schema(
        operation_id="send_notification",
        summary="Send a notification",
        request=SendNotificationRequest,
        responses={202: SendNotificationResponse, **ERRORS},
    )
    def post(self, request):
        result = send_notification(self.client, self.parse(request, SendNotificationRequest))
        if result.error is not None:
            raise result.error
        return Response(_item_body(result), status=202)


class BulkSendView(ServiceApiView):
    required_scopes = {"POST": "send"}

    @extend_schema(
        operation_id="send_notifications_bulk",
        summary="Send up to 1000 notifications",
        description="Results come back in request order. Invalid or forbidden items reject the whole request.",
        request=BulkSendRequest,
        responses={202: BulkSendResponse, **ERRORS},
    )
    def post(self, request):
        bulk = self.parse(request, BulkSendRequest)
        results = send_notifications(self.client, bulk.items)
        body = {
            "accepted": sum(1 for r in results if r.created),
            "duplicates": sum(1 for r in results if r.error is None and not r.created),
            "failed": sum(1 for r in results if r.error is not None),
            "results": [
                {"index": r.index, "error": r.error.as_dict()} if r.error else {"index": r.index, **_item_body(r)}
                for r in results
            ],
        }
        return Response(body, status=202)


class NotificationDetailView(ServiceApiView):
    required_scopes = {"GET": "status"}

    @extend_schema(
        operation_id="get_notification",
        summary="Status of a notification and of each of its channels",
        responses={200: NotificationStatusResponse, **ERRORS},
    )
    def get(self, request, notification_id: str):
        status = notification_status(self.client, notification_id)
        if status is None:
            raise ApiError(404, "not_found", "no such notification")
        return Response(status)


_USER_ID_PARAM = OpenApiParameter("user_id", str, OpenApiParameter.PATH, description="The platform's user id")


class RecipientView(ServiceApiView):
    required_scopes = {"GET": "recipients", "PUT": "recipients"}

    @extend_schema(
        operation_id="get_recipient", parameters=[_USER_ID_PARAM], responses={200: RecipientResponse, **ERRORS}
    )
    def get(self, request, user_id: str):
        recipient = recipients.get_recipient(_user_id(user_id))
        if recipient is None:
            raise ApiError(404, "not_found", "no such recipient")
        return Response(recipients.recipient_document(recipient))

    @extend_schema(
        operation_id="put_recipient",
        summary="Create or replace a recipient's contact record",
        parameters=[_USER_ID_PARAM],
        request=RecipientRequest,
        responses={200: RecipientResponse, 201: RecipientResponse, **ERRORS},
    )
    def put(self, request, user_id: str):
        user_id = _user_id(user_id)
        recipient, created = recipients.put_recipient(user_id, self.parse(request, RecipientRequest))
        return Response(recipients.recipient_document(recipient), status=201 if created else 200)


class RecipientDevicesView(ServiceApiView):
    required_scopes = {"GET": "recipients", "POST": "recipients", "DELETE": "recipients"}

    @extend_schema(operation_id="list_devices", parameters=[_USER_ID_PARAM], responses={200: DeviceOut, **ERRORS})
    def get(self, request, user_id: str):
        return Response({"devices": [devices.device_document(d) for d in devices.list_devices(_user_id(user_id))]})

    @extend_schema(
        operation_id="register_device",
        summary="Register (or refresh) a push device token",
        parameters=[_USER_ID_PARAM],
        request=DeviceRequest,
        responses={200: DeviceOut, 201: DeviceOut, **ERRORS},
    )
    def post(self, request, user_id: str):
        user_id = _user_id(user_id)
        body = self.parse(request, DeviceRequest)
        device, created = devices.register_device(user_id, platform=body.platform, token=body.token)
        return Response(devices.device_document(device), status=201 if created else 200)

    @extend_schema(
        operation_id="remove_device",
        summary="Remove a push device token (JSON body or ?token=)",
        parameters=[_USER_ID_PARAM, OpenApiParameter("token", str, OpenApiParameter.QUERY, required=False)],
        request=DeviceDeleteRequest,
        responses={204: None, **ERRORS},
    )
    def delete(self, request, user_id: str):
        user_id = _user_id(user_id)
        token = request.query_params.get("token")
        if not token:
            token = self.parse(request, DeviceDeleteRequest).token
        if not devices.remove_device(user_id, token=token):
            raise ApiError(404, "not_found", "no such device")
        return Response(status=204)
