from django.urls import path

from notifications.realtime.consumer import NotificationConsumer

websocket_urlpatterns = [path("ws/notifications/", NotificationConsumer.as_asgi())]
