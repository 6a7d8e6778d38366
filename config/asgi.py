"""ASGI entry point (Daphne): HTTP for the API, admin and docs; WebSockets for the bell."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up first)

from notifications.realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # No origin check: the socket authenticates with a user token, never a cookie, so a page
        # on another origin gains nothing by opening it; and apps (no Origin header) must connect.
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
