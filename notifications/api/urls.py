from django.urls import path

from notifications.api import me_views, views
from notifications.realtime import stream

urlpatterns = [
    path("notifications", views.SendNotificationView.as_view(), name="send-notification"),
    path("notifications/bulk", views.BulkSendView.as_view(), name="send-bulk"),
    path("notifications/<str:notification_id>", views.NotificationDetailView.as_view(), name="notification-detail"),
    path("recipients/<str:user_id>", views.RecipientView.as_view(), name="recipient"),
    path("recipients/<str:user_id>/devices", views.RecipientDevicesView.as_view(), name="recipient-devices"),
    path("recipients/<str:user_id>/token", views.RecipientTokenView.as_view(), name="recipient-token"),
    # The end-user API: user tokens, the caller's own rows only.
    path("me/inbox", me_views.InboxListView.as_view(), name="my-inbox"),
    path("me/inbox/unread-count", me_views.UnreadCountView.as_view(), name="my-unread-count"),
    path("me/inbox/read-all", me_views.ReadAllView.as_view(), name="my-inbox-read-all"),
    *(
        path(f"me/inbox/{action}", view.as_view(), name=f"my-inbox-{action}")
        for action, view in me_views.MANY_ACTION_VIEWS.items()
    ),
    path("me/inbox/<str:notification_id>", me_views.InboxItemView.as_view(), name="my-inbox-item"),
    *(
        path(f"me/inbox/<str:notification_id>/{action}", view.as_view(), name=f"my-inbox-item-{action}")
        for action, view in me_views.ITEM_ACTION_VIEWS.items()
    ),
    path("me/stream", stream.inbox_stream, name="my-stream"),
]
