"""The demo catalog and demo users that ``make run`` starts with. Safe to run repeatedly."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from delivery.services.devices import register_device
from notifications.models import ApiClient, NotificationType
from notifications.schemas import RecipientRequest
from notifications.services.api_keys import create_api_client, split_key
from notifications.services.recipients import put_recipient
from templates_app.models import Template

DEMO_TYPES = [
    {
        "key": "payment_confirmed",
        "name": "Payment confirmed",
        "category": "transactional",
        "default_channels": ["email", "push", "inapp"],
        "default_priority": "high",
        "required": False,
        "allow_critical": False,
    },
    {
        "key": "order_shipped",
        "name": "Order shipped",
        "category": "transactional",
        "default_channels": ["email", "push", "inapp"],
        "default_priority": "normal",
        "required": False,
        "allow_critical": False,
    },
    {
        "key": "security_alert",
        "name": "Security alert",
        "category": "security",
        "default_channels": ["email", "sms", "push", "inapp"],
        "default_priority": "high",
        "required": True,
        "allow_critical": True,
    },
    {
        "key": "promotion",
        "name": "Promotion",
        "category": "marketing",
        "default_channels": ["email", "push", "inapp"],
        "default_priority": "low",
        "required": False,
        "allow_critical": False,
    },
]

# (subject/title, body, html, action_url) per type; every channel gets a template.
_TEXTS = {
    "payment_confirmed": (
        "Payment of {{ amount }} received",
        "Hi {{ name }}, we received your payment of {{ amount }} for order {{ order_id }}.",
        "<p>Hi {{ name }},</p><p>We received your payment of <strong>{{ amount }}</strong> for order {{ order_id }}.</p>",
        "/orders/{{ order_id }}",
    ),
    "order_shipped": (
        "Order {{ order_id }} has shipped",
        "Good news {{ name }}: order {{ order_id }} is on its way.",
        "<p>Good news {{ name }}: order <strong>{{ order_id }}</strong> is on its way.</p>",
        "/orders/{{ order_id }}",
    ),
    "security_alert": (
        "Security alert: {{ event }}",
        "{{ event }} on your account. If this was not you, secure your account now.",
        "<p><strong>{{ event }}</strong> on your account.</p><p>If this was not you, secure your account now.</p>",
        "/security",
    ),
    "promotion": (
        "{{ headline }}",
        "{{ headline }}: {{ offer }}",
        "<h1>{{ headline }}</h1><p>{{ offer }}</p>",
        "/offers",
    ),
}

DEMO_RECIPIENTS = {
    "alice": {"email": "alice@example.com", "phone": "+14155550101", "locale": "en", "timezone": "America/Los_Angeles"},
    "bob": {"email": "bob@example.com", "phone": "+442071838750", "locale": "en-GB", "timezone": "Europe/London"},
}


def seed_catalog() -> None:
    """The four demo notification types with a template for every channel."""
    with transaction.atomic():
        for spec in DEMO_TYPES:
            NotificationType.objects.update_or_create(key=spec["key"], defaults=spec)
            subject, body, html, action_url = _TEXTS[spec["key"]]
            for channel in settings.CHANNELS:
                Template.objects.update_or_create(
                    type_key=spec["key"],
                    channel=channel,
                    defaults={
                        "subject": subject if channel != "sms" else "",
                        "body": body,
                        "html": html if channel == "email" else "",
                        "action_url": action_url if channel in ("push", "inapp") else "",
                    },
                )


@dataclass(frozen=True)
class DemoAccess:
    api_key: str
    admin_username: str
    admin_password: str


def seed_demo() -> DemoAccess:
    """Catalog, demo recipients with devices, an admin user and the demo API key."""
    seed_catalog()
    for user_id, contact in DEMO_RECIPIENTS.items():
        put_recipient(user_id, RecipientRequest(**contact))
        register_device(user_id, platform="android", token=f"demo-device-token-{user_id}")

    User = get_user_model()
    if not User.objects.filter(username=settings.DEMO_ADMIN_USERNAME).exists():
        User.objects.create_superuser(settings.DEMO_ADMIN_USERNAME, "", settings.DEMO_ADMIN_PASSWORD)

    key = settings.DEMO_API_KEY
    parts = split_key(key)
    if parts is None:
        raise ValueError("DEMO_API_KEY must look like nk_<8 characters>_<secret>")
    if not ApiClient.objects.filter(key_prefix=parts[0]).exists():
        create_api_client("demo", allowed_types=["*"], may_send_critical=True, key=key)
    return DemoAccess(key, settings.DEMO_ADMIN_USERNAME, settings.DEMO_ADMIN_PASSWORD)
