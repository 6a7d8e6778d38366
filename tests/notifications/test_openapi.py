"""The published OpenAPI schema is valid and tells the truth about the answers.

Schemathesis drives a live gunicorn (the Procfile's server, with its response check on, as in
every test profile) with generated requests, valid and invalid: every answer must be one its
operation documents, match the documented schema, and never be a 5xx.
"""

import subprocess
import sys

import pytest
import schemathesis
import schemathesis.engine
from schemathesis.engine import Status, events

from notifications.api.openapi import ResponseDrift
from tests.support.factories import make_key, send_body
from tests.support.processes import ROOT, service_env, start_web

pytestmark = pytest.mark.django_db(databases="__all__")
# The live server reads what the test writes (its API key, the demo catalog): committed data.
live = pytest.mark.django_db(databases="__all__", transaction=True)

SCHEMA_URL = "/api/schema/?format=json"
# Bounded and repeatable: a fixed seed, 15 examples per operation and generation mode, and
# neither an example database nor a cache (nothing learnt from, or written into, the tree).
SCHEMATHESIS_CONFIG = """
seed = 20261122
[cache]
enabled = false
[generation]
mode = "all"  # positive and negative
max-examples = 15
database = "none"
[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
response_schema_conformance.enabled = true
"""


def test_the_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(out)],
        cwd=ROOT, env=service_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("openapi: 3.1.0")


def test_the_schema_documents_what_the_api_does(client):
    schema = client.get(SCHEMA_URL).json()
    paths, components = schema["paths"], schema["components"]["schemas"]
    send = paths["/api/v1/notifications"]["post"]["responses"]
    assert {"202", "400", "401", "403", "405", "406", "409", "411", "413", "415", "503"} <= set(send)
    devices = paths["/api/v1/recipients/{user_id}/devices"]["get"]
    assert devices["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/DeviceListResponse")
    user_id = next(p for p in devices["parameters"] if p["name"] == "user_id")
    assert user_id["schema"]["pattern"] == r"^[A-Za-z0-9_.:@-]{1,64}$"
    assert "SendNotificationRequestRequest" not in components
    bulk_item = components["BulkSendRequest"]["properties"]["items"]["items"]
    assert bulk_item == {"$ref": "#/components/schemas/SendNotificationRequest"}
    assert components["ErrorResponse"]["additionalProperties"] is False


def test_an_answer_that_drifts_from_its_model_is_an_error(api, monkeypatch):
    """The renderer's check (on in tests): an answer the schema does not describe never passes."""
    from notifications.api import views

    real = views.send_response
    monkeypatch.setattr(views, "send_response", lambda result: {**real(result), "surprise": 1})
    with pytest.raises(ResponseDrift, match="surprise"):
        api.post("/api/v1/notifications", send_body("u1"), format="json")

    monkeypatch.setattr(views, "send_response", lambda result: {**real(result), "outcome": "maybe"})
    with pytest.raises(ResponseDrift, match="outcome"):
        api.post("/api/v1/notifications", send_body("u1"), format="json")


@live
@pytest.mark.timeout(300)
def test_every_answer_is_documented_and_never_a_server_error(tmp_path, demo_catalog):
    """(Schemathesis's engine, as its CLI runs it: its pytest integration does not run under
    pytest 9.)"""
    process, base = start_web(tmp_path, workers=2)
    try:
        config = schemathesis.Config.from_str(SCHEMATHESIS_CONFIG)
        schema = schemathesis.openapi.from_url(f"{base}{SCHEMA_URL}", config=config, timeout=30)
        schema.config.update(base_url=base, headers={"Authorization": f"Bearer {make_key()}"})
        problems, tested = run_schemathesis(schema)
    finally:
        process.stop()
    assert tested >= 8, "every operation is exercised"
    assert not problems, "\n\n".join(problems)


def run_schemathesis(schema) -> tuple[list[str], int]:
    """Each failed check (with a curl command to reproduce it) and each error; and how many
    operations were tested."""
    problems: list[str] = []
    tested: set[str] = set()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.status != Status.SKIP and event.label:
            tested.add(event.label)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        problems.append(f"{event.label}: {check.name}: {failure.title}\n{failure.message}\n"
                                        f"{check.failure_info.code_sample}")  # fmt: skip
        elif isinstance(event, events.NonFatalError):
            problems.append(f"{event.label}: error: {event.info}")
        elif isinstance(event, events.FatalError):
            problems.append(f"fatal: {event.exception!r}")
    return sorted(set(problems)), len(tested)
