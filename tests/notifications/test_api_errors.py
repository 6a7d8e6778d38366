"""Every API error is the JSON error shape, and a caller that has not proved who it is learns
nothing else: 401 comes before 406, 411, 413 and 415."""

import pytest
from rest_framework.test import APIClient

from notifications.schemas import ErrorResponse
from tests.support.factories import send_body

pytestmark = pytest.mark.django_db(databases="__all__")

URL = "/api/v1/notifications"


def error_of(response, status: int, code: str) -> ErrorResponse:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = ErrorResponse.model_validate_json(response.content)
    assert (error.status, error.code) == (status, code)
    return error


def anonymous() -> APIClient:
    return APIClient()


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--xyz--\r\n'),
        ("application/x-www-form-urlencoded", b"user_id=u1"),
        ("text/plain", b"hello"),
        ("application/json", b'{"user_id": "u1",'),
        ("application/json", b"\xff\xfe not even UTF-8"),
    ],
)
def test_without_credentials_any_body_is_a_json_401(content_type, body):
    response = anonymous().generic("POST", URL, body, content_type=content_type)
    error_of(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=xyz",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/xml",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "",
    ],
)
def test_a_body_that_is_not_utf8_json_is_a_json_415(api, content_type):
    response = api.generic("POST", URL, b'{"user_id": "u1"}', content_type=content_type)
    error = error_of(response, 415, "unsupported_media_type")
    assert "application/json" in error.message


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON", "APPLICATION/JSON; Charset=UTF-8",
     "application/json;charset=utf8"],
)  # fmt: skip
def test_json_is_accepted_in_any_letter_case_with_a_utf8_charset(api, content_type):
    import json

    response = api.generic("POST", URL, json.dumps(send_body("u1")), content_type=content_type)
    assert response.status_code == 202, response.content


def test_405_and_406_are_json_and_come_after_authentication(api):
    error_of(api.delete(URL), 405, "method_not_allowed")
    error_of(api.options(URL), 405, "method_not_allowed")
    error_of(api.post(URL, send_body("u1"), format="json", HTTP_ACCEPT="text/html"), 406, "not_acceptable")
    error_of(anonymous().get(f"{URL}/x", HTTP_ACCEPT="text/html"), 401, "not_authenticated")
    error_of(anonymous().delete(URL), 401, "not_authenticated")


def test_a_json_accept_header_in_any_form_is_fine(api):
    for accept in ("application/json", "*/*", "application/*", "application/json; q=0.9, text/html"):
        response = api.post(URL, send_body("u1"), format="json", HTTP_ACCEPT=accept)
        assert response.status_code == 202, (accept, response.content)


def test_framing_errors_are_json_after_authentication(api):
    too_big = api.generic("POST", URL, b"{}", content_type="application/json", CONTENT_LENGTH="70000")
    error_of(too_big, 413, "body_too_large")
    chunked = api.generic("POST", URL, b"{}", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked")
    error_of(chunked, 411, "length_required")
    error_of(anonymous().generic("POST", URL, b"{}", content_type="application/json", CONTENT_LENGTH="70000"),
             401, "not_authenticated")  # fmt: skip


def test_removing_a_device_names_the_missing_token(api):
    error = error_of(api.delete("/api/v1/recipients/u1/devices"), 400, "invalid_request")
    assert error.errors[0].field == "token"
