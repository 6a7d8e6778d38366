"""Google's OAuth token endpoint and FCM HTTP v1 send, as ``firebase-admin`` calls them.

The service account's ``token_uri`` points at ``/token`` here; FCM's fixed
``https://fcm.googleapis.com`` (and google-auth's own lookup of the service account's allowed
locations on ``iamcredentials.googleapis.com``) are reached through the server's HTTPS proxy side. Tokens say
how FCM answers them: one containing ``gone`` is UNREGISTERED, ``bad`` an invalid argument,
``busy`` a 503; any other is accepted.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.server import FakeProviders, Recorded, Reply

TOKEN = "google.token"
FCM_SEND = "fcm.send"
FCM_HOST = "fcm.googleapis.com"
IAM_HOST = "iamcredentials.googleapis.com"  # google-auth looks up the account's allowed locations
ALLOWED_LOCATIONS = "google.allowed_locations"
PROJECT = "notify-test"
ACCESS_TOKEN = "ya29.fake-access-token"
_ids = itertools.count(1)


def fcm_error(status: int, state: str, error_code: str | None = None, headers: dict | None = None) -> Reply:
    """FCM v1's error document (``errorCode`` is what the SDK maps to its exceptions)."""
    error: dict = {"code": status, "message": f"{state.lower()} (fake)", "status": state}
    if error_code:
        error["details"] = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]
    return Reply(status, {"error": error}, headers or {})


UNREGISTERED = fcm_error(404, "NOT_FOUND", "UNREGISTERED")
INVALID_TOKEN = fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")


def _token(request: Recorded) -> Reply:
    return Reply(200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"})


def _send(request: Recorded) -> Reply:
    token = request.json()["message"].get("token", "")
    if "gone" in token:
        return UNREGISTERED
    if "bad" in token:
        return INVALID_TOKEN
    if "busy" in token:
        return fcm_error(503, "UNAVAILABLE")
    project = request.path.split("/")[3]
    return Reply(200, {"name": f"projects/{project}/messages/{next(_ids)}"})


def install(server: FakeProviders) -> None:
    server.route(TOKEN, "POST", r"/token", _token)
    server.route(
        ALLOWED_LOCATIONS,
        "GET",
        r"/v1/projects/-/serviceAccounts/[^/]+/allowedLocations",
        lambda request: Reply(200, {"encodedLocations": "0x0", "locations": []}),
    )
    server.route(FCM_SEND, "POST", r"/v1/projects/[^/]+/messages:send", _send)


def write_service_account(server: FakeProviders, folder: Path) -> Path:
    """A service-account file whose OAuth ``token_uri`` is the fake's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path = folder / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "fake-key-id",
                "private_key": pem.decode(),
                "client_email": f"notify@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": f"{server.url}/token",
            }
        )
    )
    return path
