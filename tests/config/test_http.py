"""Health, readiness, metrics and the OpenAPI documentation."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db(databases="__all__")


def test_metrics_are_exposed():
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests_total_by_method_total" in response.content


def test_openapi_schema_documents_the_api_from_the_request_models():
    schema = Client().get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert set(paths) >= {
        "/api/v1/notifications",
        "/api/v1/notifications/bulk",
        "/api/v1/notifications/{notification_id}",
        "/api/v1/recipients/{user_id}",
        "/api/v1/recipients/{user_id}/devices",
    }
    send = schema["components"]["schemas"]["SendNotificationRequest"]
    assert set(send["required"]) == {"type", "idempotency_key"}
    assert send["properties"]["priority"]["anyOf"][0]["enum"] == ["critical", "high", "normal", "low"]
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert "202" in paths["/api/v1/notifications"]["post"]["responses"]


def test_swagger_ui_is_served_without_a_cdn():
    page = Client().get("/api/docs/")
    assert page.status_code == 200
    assert b"cdn.jsdelivr" not in page.content
