"""The end-user API (``/api/v1/me/``): the caller's own inbox, authenticated by a user token.

Every query is filtered by the token's user: an id of another user's item answers 404, the
same as an id that does not exist.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from notifications.api.errors import ApiError
from notifications.api.inbox_schemas import InboxItemOut, InboxPage, MarkManyRequest, MarkResult, UnreadCount
from notifications.api.openapi import errors, responds
from notifications.api.user_auth import UserTokenAuthentication
from notifications.api.views import ServiceApiView
from notifications.models import Category
from notifications.services import inbox
from notifications.services.realtime_events import announce_inbox_changed


class UserApiView(ServiceApiView):
    # The service API's request handling (order of checks, body limits, JSON errors) with
    # end-user tokens instead of API keys, and no scopes: a token grants its user's own rows.
    authentication_classes = [UserTokenAuthentication]
    permission_classes = [IsAuthenticated]

    @property
    def user_id(self) -> str:
        return self.request.user.user_id


def _bad(field: str, code: str, message: str) -> ApiError:
    return ApiError(400, "invalid_request", f"{field}: {message}", [(field, code, message)])


def _ids(raw: list[str], field: str = "ids") -> list[str]:
    for index, value in enumerate(raw):
        try:
            inbox.parse_id(value)
        except inbox.InvalidCursor as exc:
            raise _bad(f"{field}[{index}]", "invalid_id", str(exc)) from None
    return raw


def _one(notification_id: str) -> str:
    try:
        inbox.parse_id(notification_id)
    except inbox.InvalidCursor as exc:
        raise _bad("notification_id", "invalid_id", str(exc)) from None
    return notification_id


_ID_PARAM = OpenApiParameter("notification_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class InboxListView(UserApiView):
    @responds(
        {200: InboxPage, **errors()},
        operation_id="list_my_inbox",
        summary="My inbox, newest first",
        parameters=[
            OpenApiParameter("cursor", str, description="`next_cursor` of the previous page"),
            OpenApiParameter("limit", int, description=f"1 to {settings.INBOX_MAX_PAGE_SIZE}"),
            OpenApiParameter("unread", bool, description="only unread items"),
            OpenApiParameter("category", str, enum=Category.values),
        ],
    )
    def get(self, request):
        query = request.query_params
        raw_limit = query.get("limit", str(settings.INBOX_PAGE_SIZE))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= settings.INBOX_MAX_PAGE_SIZE:
            raise _bad("limit", "invalid_limit", f"must be an integer from 1 to {settings.INBOX_MAX_PAGE_SIZE}")
        unread = query.get("unread", "false").lower()
        if unread not in ("true", "false", "1", "0"):
            raise _bad("unread", "invalid_boolean", "must be true or false")
        category = query.get("category") or None
        if category is not None and category not in Category.values:
            raise _bad("category", "invalid_category", f"must be one of {', '.join(Category.values)}")
        try:
            page = inbox.list_page(
                self.user_id, before=query.get("cursor") or None, limit=int(raw_limit),
                unread_only=unread in ("true", "1"), category=category,
            )  # fmt: skip
        except inbox.InvalidCursor:
            raise _bad("cursor", "invalid_cursor", "is not a cursor this API gave") from None
        return Response(
            {"items": page.items, "next_cursor": page.next_cursor, "unread_count": inbox.unread_count(self.user_id)}
        )


class UnreadCountView(UserApiView):
    @responds({200: UnreadCount, **errors()}, operation_id="my_unread_count", summary="My unread count")
    def get(self, request):
        return Response({"unread_count": inbox.unread_count(self.user_id)})


class InboxItemView(UserApiView):
    @responds({200: InboxItemOut, **errors(404)}, operation_id="get_my_inbox_item", parameters=[_ID_PARAM])
    def get(self, request, notification_id: str):
        item = inbox.get_item(self.user_id, _one(notification_id))
        if item is None:
            raise ApiError(404, "not_found", "no such inbox item")
        return Response(item)


def _marked(user_id: str, changed: int) -> Response:
    if changed:
        announce_inbox_changed(user_id)  # the user's other tabs and devices update their badge
    return Response({"changed": changed, "unread_count": inbox.unread_count(user_id)})


_ACTIONS = {"read": inbox.mark_read, "seen": inbox.mark_seen, "archive": inbox.archive}


def _item_action_view(action: str) -> type[UserApiView]:
    """POST /me/inbox/{id}/<action>: 404 unless the item is the caller's."""
    mark = _ACTIONS[action]

    class View(UserApiView):
        @responds(
            {200: MarkResult, **errors(404)}, operation_id=f"{action}_my_inbox_item", parameters=[_ID_PARAM], request=None,
            summary=f"Mark one of my items {action if action != 'archive' else 'archived'}",
        )  # fmt: skip
        def post(self, request, notification_id: str):
            notification_id = _one(notification_id)
            if inbox.get_item(self.user_id, notification_id) is None:
                raise ApiError(404, "not_found", "no such inbox item")
            return _marked(self.user_id, mark(self.user_id, [notification_id]))

    View.__name__ = View.__qualname__ = f"{action.title()}ItemView"
    return View


def _many_action_view(action: str) -> type[UserApiView]:
    """POST /me/inbox/<action> with ``{"ids": [...]}``; ids of other users' items change nothing."""
    mark = _ACTIONS[action]

    class View(UserApiView):
        @responds(
            {200: MarkResult, **errors(415)}, operation_id=f"{action}_my_inbox_items", request=MarkManyRequest,
            summary=f"Mark several of my items {action if action != 'archive' else 'archived'}",
        )  # fmt: skip
        def post(self, request):
            body = self.parse(request, MarkManyRequest)
            return _marked(self.user_id, mark(self.user_id, _ids(body.ids)))

    View.__name__ = View.__qualname__ = f"{action.title()}ManyView"
    return View


ITEM_ACTION_VIEWS = {action: _item_action_view(action) for action in _ACTIONS}
MANY_ACTION_VIEWS = {action: _many_action_view(action) for action in _ACTIONS}


class ReadAllView(UserApiView):
    @responds(
        {200: MarkResult, **errors()},
        operation_id="read_all_my_inbox",
        summary="Mark my whole inbox read",
        request=None,
    )
    def post(self, request):
        return _marked(self.user_id, inbox.mark_all_read(self.user_id))
