"""The fake provider server's own process entry point (bench/delivery's plumbing): the outage
switch over its control endpoint, and request counting without keeping the requests."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.fakes import serve


def _call(server, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, path, body=json.dumps(body or {}), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


@pytest.fixture
def server():
    fake = serve.build().start()
    yield fake
    fake.stop()


def test_an_outage_answers_every_request_until_recovered(server):
    assert _call(server, "POST", "/v3/mail/send")[0] == 202
    assert _call(server, "POST", "/_control/outage", {"route": "sendgrid.send", "status": 503})[0] == 200
    assert [_call(server, "POST", "/v3/mail/send")[0] for _ in range(3)] == [503] * 3
    assert _call(server, "POST", "/_control/recover", {"route": "sendgrid.send"})[0] == 200
    assert _call(server, "POST", "/v3/mail/send")[0] == 202
    status, counts = _call(server, "GET", "/_control/counts")
    assert status == 200 and counts["sendgrid.send"] == 5
    assert server.requests == []  # counted, not kept
