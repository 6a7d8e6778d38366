"""The bell page (``/inbox/?token=<user token>``): the reference client, served as a plain
template with static JS and CSS (no CDN, no build step)."""

from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def inbox_page(request):
    # The token is only handed to the page's script; the API checks it on every call.
    response = render(
        request,
        "notifications/inbox.html",
        {"token": request.GET.get("token", ""), "api_base": "/api/v1/me", "ws_path": "/ws/notifications/"},
    )
    response["Referrer-Policy"] = "no-referrer"  # the token is in this page's URL
    response["Cache-Control"] = "no-store"
    return response
