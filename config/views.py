"""The landing page at ``/``: what this service is and where its parts are (the admin's
"View site" link points here)."""

from django.conf import settings
from django.shortcuts import render

# (method, path, what it does); the API reference with every field is at /api/docs/.
API_ENDPOINTS = [
    ("POST", "/api/v1/notifications", "send one notification (answers 202 once it is stored)"),
    ("POST", "/api/v1/notifications/bulk", "send up to 1000 notifications in one request"),
    ("GET", "/api/v1/notifications/{id}", "a notification's status, per channel"),
    ("PUT / GET", "/api/v1/recipients/{user_id}", "how to reach a user: email, phone, locale, time zone"),
    ("GET / POST / DELETE", "/api/v1/recipients/{user_id}/devices", "a user's push devices"),
    ("POST", "/api/v1/recipients/{user_id}/token", "a short-lived token for one of your users (bell, inbox)"),
    ("GET", "/api/v1/me/inbox", "the token's user's inbox (user-token auth), newest first"),
    ("GET", "/api/v1/me/stream", "the same user's live notifications as Server-Sent Events"),
    ("WS", "/ws/notifications/", "live notifications over a WebSocket (docs/inapp-protocol.md)"),
    ("GET", "/inbox/?token=…", "the bell page: the reference in-app client"),
]


def landing(request):
    return render(
        request,
        "config/landing.html",
        {"profile": settings.PROFILE, "channels": settings.CHANNELS, "endpoints": API_ENDPOINTS},
    )
