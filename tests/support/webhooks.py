"""Signed provider webhook requests, built the way SendGrid and Twilio build them."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client
from twilio.request_validator import RequestValidator

from delivery.services.provider_webhooks import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
)

SENDGRID_PATH = "/webhooks/sendgrid/events"
TWILIO_PATH = "/webhooks/twilio/status"


@dataclass
class SendGridSigner:
    """An account's event-webhook key pair: SendGrid keeps the private half and shows the
    public one (base64 DER) in its Mail Settings."""

    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> SendGridSigner:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key(self) -> str:
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def sign(self, timestamp: str, payload: str) -> str:
        """ECDSA P-256 with SHA-256 over timestamp + payload, DER, base64 (as SendGrid does)."""
        signature = self.private_key.sign((timestamp + payload).encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()

    def headers(self, payload: str, *, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        return {SENDGRID_SIGNATURE_HEADER: self.sign(stamp, payload), SENDGRID_TIMESTAMP_HEADER: stamp}


def sendgrid_event(delivery_id: Any, event: str, *, at: int | None = None, **fields: Any) -> dict[str, Any]:
    """One event as SendGrid posts it: our custom_args at the top level of the event."""
    return {
        "email": "someone@example.com",
        "timestamp": int(time.time()) if at is None else at,
        "event": event,
        "sg_event_id": f"evt-{event}-{delivery_id}",
        "sg_message_id": "sg-message.filter0001",
        "delivery_id": str(delivery_id),
        **fields,
    }


def post_sendgrid(signer: SendGridSigner | None, events: Any, *, client: Client | None = None, **options: Any):
    payload = events if isinstance(events, str) else json.dumps(events)
    headers = signer.headers(payload, **options) if signer else {}
    return (client or Client()).post(SENDGRID_PATH, data=payload, content_type="application/json", headers=headers)


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    return RequestValidator(auth_token).compute_signature(url, params)


def post_twilio(
    auth_token: str | None, base_url: str, query: str, params: dict[str, str], *, signed_url: str | None = None
):
    """A status callback as Twilio posts it: form-encoded, signed over the URL it called."""
    target = f"{TWILIO_PATH}?{query}" if query else TWILIO_PATH
    url = f"{base_url}{target}"
    headers = {TWILIO_SIGNATURE_HEADER: twilio_signature(auth_token, signed_url or url, params)} if auth_token else {}
    return Client().post(
        target, data=urlencode(params), content_type="application/x-www-form-urlencoded", headers=headers
    )
