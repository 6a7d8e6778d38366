from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from config.models import ShardedModel
from notifications import rules
from notifications.rules import RuleValidator

PRIORITY_CHOICES = [(priority, priority) for priority in settings.PRIORITIES]


# --- Global database ----------------------------------------------------------------------


class Category(models.TextChoices):
    TRANSACTIONAL = "transactional"
    SECURITY = "security"
    MARKETING = "marketing"
    SOCIAL = "social"
    SYSTEM = "system"


class NotificationType(models.Model):
    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=16, choices=Category.choices)
    default_channels = models.JSONField(default=list, help_text='e.g. ["email", "push", "inapp"]')
    fallback_channels = models.JSONField(
        default=list,
        blank=True,
        help_text='The order channels stand in for each other, e.g. ["push", "email", "sms"]: when a channel fails '
        "permanently for a user (no devices, every token invalid, bounced, invalid number) the next one is tried, "
        "once. Empty: no fallback.",
    )
    default_priority = models.CharField(max_length=8, choices=PRIORITY_CHOICES, default="normal")
    required = models.BooleanField(
        default=False, help_text="Users cannot opt out of this type (security, 2FA, payments)."
    )
    allow_critical = models.BooleanField(
        default=False, help_text="Senders holding a critical-capable key may send this type at critical priority."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    def clean(self) -> None:
        errors = {}
        try:
            self.default_channels = rules.channels(self.default_channels)
        except rules.RuleViolation as violation:
            errors["default_channels"] = rules.django_error(violation)
        try:
            self.fallback_channels = rules.fallback_channels(self.fallback_channels)
        except rules.RuleViolation as violation:
            errors["fallback_channels"] = rules.django_error(violation)
        if errors:
            raise ValidationError(errors)


class ApiScope(models.TextChoices):
    SEND = "send", "send notifications"
    STATUS = "status", "read notification status"
    RECIPIENTS = "recipients", "manage recipients and devices"
    TOKENS = "tokens", "issue end-user tokens (bell, inbox)"


ALL_SCOPES = [scope.value for scope in ApiScope]
# What a client gets when none are named. Not ``tokens``: a key that may mint an end-user token
# for any user id can read every inbox, so it is granted only on purpose.
DEFAULT_SCOPES = [scope for scope in ALL_SCOPES if scope != ApiScope.TOKENS]


class ApiClient(models.Model):
    """A service that calls the API. Only a hash of its key is stored."""

    name = models.CharField(max_length=100, unique=True)
    key_prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    allowed_types = models.JSONField(default=list, help_text='Type keys this client may send, or ["*"].')
    may_send_critical = models.BooleanField(default=False)
    scopes = models.JSONField(default=list, help_text=f"Any of {', '.join(ALL_SCOPES)}.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# --- User shards --------------------------------------------------------------------------


class Recipient(ShardedModel):
    """How to reach a user. Keyed by the platform's own user id."""

    user_id = models.CharField(max_length=64, primary_key=True, validators=[RuleValidator("user_id")])
    email = models.EmailField(max_length=320, blank=True, validators=[RuleValidator("email")])
    email_verified = models.BooleanField(default=True)
    email_bounced = models.BooleanField(
        default=False, help_text="Set when mail to this address bounced; cleared when the address changes."
    )
    phone = models.CharField(
        max_length=20, blank=True, help_text="International format, e.g. +14155550101", validators=[RuleValidator("phone")]
    )
    phone_verified = models.BooleanField(default=True)
    phone_unreachable = models.BooleanField(
        default=False,
        help_text="Set when the SMS provider called this number invalid or unreachable; cleared when the number changes.",
    )
    locale = models.CharField(
        max_length=35, blank=True, help_text="Language tag, e.g. en, fr-CA", validators=[RuleValidator("locale")]
    )
    timezone = models.CharField(
        max_length=64, blank=True, help_text="IANA time zone, e.g. Europe/Paris", validators=[RuleValidator("timezone_name")]
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.user_id


class Outcome(models.TextChoices):
    """How a notification was accepted: what the service decided when it answered 202. The
    channels' live status (sent, failed...) is on the deliveries."""

    QUEUED = "queued", "queued for sending"
    SCHEDULED = "scheduled", "scheduled for later"
    UNDELIVERABLE = "undeliverable", "undeliverable (every channel skipped)"


class Notification(ShardedModel):
    id = models.UUIDField(primary_key=True, editable=False)
    user_id = models.CharField(max_length=64)
    sender = models.CharField(
        max_length=64, help_text="Who sent it: client:<api client id>, campaign:<id> or system:<name>"
    )
    type_key = models.CharField(max_length=64)
    category = models.CharField(max_length=16)
    priority = models.CharField(max_length=8, choices=PRIORITY_CHOICES)
    data = models.JSONField(default=dict)
    idempotency_key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=32)
    outcome = models.CharField("accepted as", max_length=24, choices=Outcome.choices)
    send_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sender", "idempotency_key"], name="uniq_notification_sender_key")
        ]
        indexes = [models.Index(fields=["user_id", "id"], name="notification_user_idx")]

    def __str__(self) -> str:
        return f"{self.type_key} to {self.user_id}"


class InboxItem(ShardedModel):
    """A notification as the in-app notification center shows it."""

    notification_id = models.UUIDField(primary_key=True)
    user_id = models.CharField(max_length=64)
    type_key = models.CharField(max_length=64)
    category = models.CharField(max_length=16)
    title = models.CharField(max_length=500, blank=True)
    body = models.TextField(blank=True)
    action_url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    visible_at = models.DateTimeField(help_text="Scheduled notifications appear at send_at")
    delivered_at = models.DateTimeField(null=True, blank=True, help_text="acknowledged by the user's bell or app")
    seen_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user_id", "notification_id"], name="inbox_user_idx"),
            # The few scheduled items not visible yet, subtracted from the unread counter.
            models.Index(fields=["user_id", "visible_at"], name="inbox_user_visible_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.title or self.type_key} for {self.user_id}"


class InboxCounter(ShardedModel):
    """A user's unread (and unarchived) inbox items, kept in the same transaction as every
    change to them, so the bell's badge is one primary-key read, never a COUNT over the inbox.
    Items scheduled for later are counted from the start; the inbox service subtracts the
    few not visible yet."""

    user_id = models.CharField(max_length=64, primary_key=True)
    unread = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.unread} unread for {self.user_id}"


class Broadcast(models.Model):
    """An in-app notification for everyone: one row in the global database however many users
    there are (fan-out on read). Inboxes merge the active ones with their own items by time;
    a user's read/seen/archived state is written only when they act on it
    (:class:`BroadcastState`). Campaigns create them (``notifications.services.broadcasts``)."""

    id = models.UUIDField(primary_key=True, editable=False, help_text="UUIDv7: sorts with inbox items by time")
    title = models.CharField(max_length=500)
    body = models.TextField(blank=True)
    action_url = models.CharField(max_length=500, blank=True)
    category = models.CharField(max_length=16, choices=Category.choices, default=Category.SYSTEM)
    sender = models.CharField(max_length=64, blank=True, help_text="campaign:<id> or system:<name>")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True, help_text="empty: shown until archived by each user")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.title


class BroadcastState(ShardedModel):
    """One user's state of one broadcast, written lazily (a broadcast nobody opened has none)."""

    user_id = models.CharField(max_length=64)
    broadcast_id = models.UUIDField()
    seen_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "broadcast_id"], name="uniq_broadcast_state_user")
        ]

    def __str__(self) -> str:
        return f"broadcast {self.broadcast_id} for {self.user_id}"
