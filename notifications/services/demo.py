"""The demo data ``make run`` starts with: a catalog (types and templates), two demo
recipients, and demo credentials (an admin login and a published API key).

Seeding only creates what is missing and never changes what exists, so running it again
cannot undo an operator's edits. The demo credentials are public knowledge: they belong to
the embedded profile (one machine, loopback) and are refused in the services profile.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.db import transaction

from delivery.services.devices import register_device
from notifications.models import ALL_SCOPES, ApiClient, NotificationType
from notifications.services.api_keys import create_api_client, hash_key, split_key
from notifications.services.recipients import clean_contact, get_recipient, put_recipient
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


class DemoCredentialsRefused(Exception):
    """Demo credentials were asked for in a profile that may face the internet."""


def seed_catalog() -> list[str]:
    """The four demo notification types, each with a template for every channel. A type that
    already exists is left as it is, with its templates. Returns the keys of the types created."""
    created_types = []
    with transaction.atomic():
        for spec in DEMO_TYPES:
            _, created = NotificationType.objects.get_or_create(key=spec["key"], defaults=spec)
            if not created:
                continue
            created_types.append(spec["key"])
            subject, body, html, action_url = _TEXTS[spec["key"]]
            for channel in settings.CHANNELS:
                Template.objects.get_or_create(
                    type_key=spec["key"],
                    channel=channel,
                    defaults={
                        "subject": subject if channel != "sms" else "",
                        "body": body,
                        "html": html if channel == "email" else "",
                        "action_url": action_url if channel in ("push", "inapp") else "",
                    },
                )
    return created_types


def seed_demo_recipients() -> None:
    """alice and bob, with a demo device each, unless they already exist."""
    for user_id, contact in DEMO_RECIPIENTS.items():
        if get_recipient(user_id) is None:
            put_recipient(user_id, clean_contact(contact))
            register_device(user_id, platform="android", token=f"demo-device-token-{user_id}")


def demo_credentials_allowed() -> bool:
    """Only the local profiles: the embedded one (``make run``) and the test one."""
    return settings.PROFILE in ("embedded", "test")


@dataclass(frozen=True)
class DemoAccess:
    """The demo credentials that still work; None where one is gone, changed or disabled."""

    admin_username: str | None
    admin_password: str | None
    api_key: str | None


def seed_demo_credentials() -> None:
    """The demo admin user and the demo API key, unless they (or their names) already exist."""
    _refuse_outside_local_profiles()
    User = get_user_model()
    if not User.objects.filter(username=settings.DEMO_ADMIN_USERNAME).exists():
        User.objects.create_superuser(settings.DEMO_ADMIN_USERNAME, "", settings.DEMO_ADMIN_PASSWORD)
    prefix = _demo_key_prefix()
    if not ApiClient.objects.filter(key_prefix=prefix).exists() and not ApiClient.objects.filter(name="demo").exists():
        create_api_client(
            "demo", allowed_types=["*"], may_send_critical=True, scopes=ALL_SCOPES, key=settings.DEMO_API_KEY
        )


def demo_access() -> DemoAccess:
    """What of the demo credentials still works, checked against the database (not the
    per-process caches): the admin login only if it authenticates, the key only if its
    client exists, is active and has the demo key's hash."""
    user = authenticate(username=settings.DEMO_ADMIN_USERNAME, password=settings.DEMO_ADMIN_PASSWORD)
    admin_works = user is not None and user.is_staff
    client = ApiClient.objects.filter(key_prefix=_demo_key_prefix()).first()
    key_works = client is not None and client.is_active and client.key_hash == hash_key(settings.DEMO_API_KEY)
    return DemoAccess(
        admin_username=settings.DEMO_ADMIN_USERNAME if admin_works else None,
        admin_password=settings.DEMO_ADMIN_PASSWORD if admin_works else None,
        api_key=settings.DEMO_API_KEY if key_works else None,
    )


def database_is_empty() -> bool:
    """No users, API clients or notification types: a first start (or one after a reset), so
    seeding cannot overwrite anything an operator made."""
    return not (get_user_model().objects.exists() or ApiClient.objects.exists() or NotificationType.objects.exists())


def seed_demo() -> None:
    """The catalog, the demo recipients, the demo admin and the demo API key (what is missing).
    Raises DemoCredentialsRefused, before writing anything, outside the local profiles."""
    _refuse_outside_local_profiles()
    seed_catalog()
    seed_demo_recipients()
    seed_demo_credentials()


def _demo_key_prefix() -> str:
    parts = split_key(settings.DEMO_API_KEY)
    if parts is None:
        raise ValueError("DEMO_API_KEY must look like nk_<8 characters>_<secret>")
    return parts[0]


def _refuse_outside_local_profiles() -> None:
    if not demo_credentials_allowed():
        raise DemoCredentialsRefused(
            f"the demo credentials are published in the README; refusing to install them in the {settings.PROFILE} "
            "profile. Create real ones with `manage.py createsuperuser` and `manage.py create_api_client NAME`."
        )
