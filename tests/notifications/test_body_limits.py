"""Request bodies are judged from their headers, before anything reads them, on both web
servers: gunicorn (the services profile, as the Procfile runs it) and Daphne (`manage.py
serve`, the embedded profile). The bodies these requests announce are never sent: the answer
must come anyway, and authentication comes first."""

import json

import pytest
from django.conf import settings

from notifications.schemas import ErrorResponse
from tests.support.factories import make_key
from tests.support.processes import start_serve, start_web
from tests.support.rawhttp import RawAnswer, exchange

pytestmark = [pytest.mark.django_db(databases="__all__", transaction=True), pytest.mark.timeout(300)]

SEND = "/api/v1/notifications"
BULK = "/api/v1/notifications/bulk"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    where = tmp_path_factory.mktemp("embedded")
    process, base = start_serve(where / "var", where / "serve.log")
    yield base, settings.DEMO_API_KEY  # seeded by `serve` in the embedded profile
    process.stop()


@pytest.fixture
def gunicorn(tmp_path, demo_catalog):
    process, base = start_web(tmp_path, workers=2)
    yield base, make_key()
    process.stop()


@pytest.fixture(params=["gunicorn", "embedded"])
def server(request) -> tuple[str, str]:
    return request.getfixturevalue(request.param)


def json_headers(key: str | None, length: int, **extra: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Content-Length": str(length)}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    headers.update(extra)
    return headers


def assert_error(answer: RawAnswer, status: int, code: str) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"].startswith("application/json")
    error = ErrorResponse.model_validate_json(answer.body)
    assert (error.status, error.code) == (status, code)


def test_an_oversized_single_send_is_refused_before_its_body_comes(server):
    base, key = server
    answer = exchange(base, "POST", SEND, json_headers(key, 16_000_000))
    assert_error(answer, 413, "body_too_large")
    assert f"at most {settings.API_SEND_MAX_BODY_BYTES}" in answer.json()["message"]
    assert answer.closed_after  # the announced body is never taken for a next request


@pytest.mark.parametrize("key, code", [(None, "not_authenticated"), ("nk_bogus_notakey", "authentication_failed")])
def test_an_unauthenticated_upload_gets_its_401_before_its_body(server, key, code):
    base, _ = server
    answer = exchange(base, "POST", BULK, json_headers(key, 300_000_000))
    assert_error(answer, 401, code)
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.closed_after


def test_a_body_without_credentials_is_not_waited_for(server):
    """Even within the limit: without an Authorization header the answer is a 401 whatever the
    body says, so no server waits for it."""
    base, _ = server
    answer = exchange(base, "POST", SEND, json_headers(None, 10_000))
    assert_error(answer, 401, "not_authenticated")


def test_each_endpoint_has_its_own_limit(server):
    base, key = server
    over_bulk = exchange(base, "POST", BULK, json_headers(key, settings.API_BULK_MAX_BODY_BYTES + 1))
    assert_error(over_bulk, 413, "body_too_large")
    over_put = exchange(base, "PUT", "/api/v1/recipients/u1", json_headers(key, settings.API_MAX_BODY_BYTES + 1))
    assert_error(over_put, 413, "body_too_large")

    # A bulk body larger than a single send may be is taken, and sent.
    items = [
        {"user_id": f"bulk-{i}", "type": "order_shipped", "idempotency_key": f"limits-{i}",
         "data": {"name": "x" * 1500, "order_id": str(i)}}
        for i in range(60)
    ]  # fmt: skip
    body = json.dumps({"items": items}).encode()
    assert len(body) > settings.API_SEND_MAX_BODY_BYTES
    accepted = exchange(base, "POST", BULK, json_headers(key, len(body), Connection="close"), body)
    assert accepted.status == 202, accepted.body
    assert accepted.json()["accepted"] == 60


def test_a_chunked_body_is_refused_with_411(server):
    base, key = server
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    answer = exchange(base, "POST", SEND, headers)
    assert_error(answer, 411, "length_required")
    assert answer.closed_after


def test_a_refused_body_is_not_invited_with_100_continue(embedded):
    """Twisted answers `Expect: 100-continue` by itself; for a body that will be refused the
    first thing on the wire is the refusal."""
    base, key = embedded
    answer = exchange(base, "POST", SEND, json_headers(key, 16_000_000, Expect="100-continue"))
    assert answer.raw_start.startswith(b"HTTP/1.1 413")
    assert_error(answer, 413, "body_too_large")
