from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.health import healthz, readyz
from config.views import landing
from notifications.realtime.pages import inbox_page

urlpatterns = [
    path("", landing, name="landing"),
    path("admin/", admin.site.urls),
    path("inbox/", inbox_page, name="inbox"),
    path("api/v1/", include("notifications.api.urls")),
    # Signed provider callbacks (SendGrid events, Twilio status): no API key, no CSRF token.
    path("webhooks/", include("delivery.webhooks")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("", include("django_prometheus.urls")),
]

# Under /api/ every answer is JSON, these included.
handler400 = "notifications.api.errors.api_bad_request"
handler404 = "notifications.api.errors.api_not_found"
handler500 = "notifications.api.errors.api_server_error"
