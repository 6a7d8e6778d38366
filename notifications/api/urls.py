from django.urls import path

from notifications.api import views

urlpatterns = [
    path("notifications", views.SendNotificationView.as_view(), name="send-notification"),
    path("notifications/bulk", views.BulkSendView.as_view(), name="send-bulk"),
    path("notifications/<str:notification_id>", views.NotificationDetailView.as_view(), name="notification-detail"),
    path("recipients/<str:user_id>", views.RecipientView.as_view(), name="recipient"),
    path("recipients/<str:user_id>/devices", views.RecipientDevicesView.as_view(), name="recipient-devices"),
]
