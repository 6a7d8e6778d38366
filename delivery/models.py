from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from config.models import ShardedModel


class DeliveryStatus(models.TextChoices):
    SCHEDULED = "scheduled"  # waits for next_attempt_at (send_at)
    QUEUED = "queued"  # published (or about to be) to its channel.priority queue
    SENDING = "sending"  # claimed by a worker until lease_expires_at
    RETRYING = "retrying"  # a temporary failure; due again at next_attempt_at
    SENT = "sent"  # handed to the provider
    DELIVERED = "delivered"  # confirmed by the provider (its webhook)
    OPENED = "opened"  # the recipient opened it (provider webhook; implies delivered)
    CLICKED = "clicked"  # the recipient followed a link in it (implies opened)
    BOUNCED = "bounced"  # the receiving mail server refused it (provider webhook); see reason
    FAILED = "failed"  # permanent failure; see reason and last_error
    DEAD_LETTERED = "dead_lettered"  # retries exhausted or unexpected error; replayable
    SKIPPED = "skipped"  # never attempted; see reason
    # A fallback waiting on the delivery named by fallback_of: queued if that one fails
    # permanently, skipped (fallback_not_needed) once it is sent. Never claimed as it is.
    STANDBY = "standby"


# A standby is not pending: it exists only while the delivery it backs up is pending (which
# keeps the notification in progress) or has just been sent (the standby is then ended).
PENDING_STATUSES = (DeliveryStatus.SCHEDULED, DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.RETRYING)
SUCCESS_STATUSES = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.OPENED, DeliveryStatus.CLICKED)
FAILURE_STATUSES = (DeliveryStatus.FAILED, DeliveryStatus.DEAD_LETTERED, DeliveryStatus.BOUNCED)

CHANNEL_CHOICES = [(channel, channel) for channel in settings.CHANNELS]
PRIORITY_CHOICES = [(priority, priority) for priority in settings.PRIORITIES]


class Delivery(ShardedModel):
    """One notification on one channel: what to send, where, and what happened.

    A delivery carries its rendered payload and address, so workers need nothing from the
    apps that created it.
    """

    id = models.UUIDField(primary_key=True, editable=False)
    notification_id = models.UUIDField(db_index=True)
    user_id = models.CharField(max_length=64, db_index=True)
    channel = models.CharField(max_length=8, choices=CHANNEL_CHOICES)
    priority = models.CharField(max_length=8, choices=PRIORITY_CHOICES)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices)
    reason = models.CharField(max_length=64, blank=True)
    address = models.CharField(max_length=320, blank=True)
    payload = models.JSONField(default=dict)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(
        max_length=100, blank=True, help_text="host:pid of the worker process that last claimed it"
    )
    published_at = models.DateTimeField(null=True, blank=True, help_text="last successful publish; empty if it failed")
    republish_at = models.DateTimeField(
        null=True, blank=True, help_text="still queued by then: the sweep publishes it again (a backstop)"
    )
    handed_at = models.DateTimeField(
        null=True, blank=True, help_text="handed to the provider and no outcome recorded yet (cleared when recorded)"
    )
    possibly_duplicated = models.BooleanField(
        default=False,
        help_text="a worker stopped after handing this to the provider and before recording the outcome; it was "
        "sent again, so the user may have received it twice",
    )
    provider = models.CharField(max_length=32, blank=True)
    provider_message_id = models.CharField(max_length=128, blank=True)
    provider_details = models.JSONField(
        default=dict, blank=True, help_text="what the provider reported when it accepted it (SMS segments, price)"
    )
    last_error = models.TextField(blank=True)
    fallback_of = models.UUIDField(
        null=True,
        blank=True,
        help_text="the delivery (same notification, other channel) whose permanent failure this one stands in for",
    )
    purged_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="purged from the dead letters by an operator: no longer listed or replayable; content dropped",
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    # When the provider's webhook reported each (the earliest report wins; see provider_events).
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [
            # The sweep's three questions, each answered from a small partial index.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["scheduled", "retrying"]),
                name="delivery_due_idx",
            ),
            models.Index(fields=["lease_expires_at"], condition=Q(status="sending"), name="delivery_lease_idx"),
            models.Index(fields=["republish_at"], condition=Q(status="queued"), name="delivery_republish_idx"),
            # Queued rows of a queue the broker reports empty: lost messages (see the sweep).
            models.Index(
                fields=["channel", "priority", "published_at"], condition=Q(status="queued"), name="delivery_queued_idx"
            ),
            # The dead letters (admin, manage.py dlq), newest first, without reading sent rows.
            models.Index(
                fields=["updated_at"],
                condition=Q(status__in=["failed", "dead_lettered"], purged_at__isnull=True),
                name="delivery_dead_letter_idx",
            ),
            # Standby fallbacks, found by the delivery they back up (dispatch and sweep).
            models.Index(fields=["fallback_of"], condition=Q(status="standby"), name="delivery_standby_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.status} ({self.id})"


class DeadLetter(Delivery):
    """Deliveries that ended failed or dead-lettered and were not purged: the admin's view of
    them (delivery.services.dlq is the service). Same table, no rows of its own."""

    class Meta:
        proxy = True
        verbose_name = "dead letter"
        verbose_name_plural = "dead letters"


def lapsed_after_handoff():
    """For UPDATEs that take a delivery back from a worker whose lease lapsed: true when that
    worker had already handed it to the provider (the next send may be a second one)."""
    return models.Case(
        models.When(Q(status=DeliveryStatus.SENDING, handed_at__isnull=False), then=models.Value(True)),
        default=models.F("possibly_duplicated"),
    )


class Device(ShardedModel):
    """A push token of one of a user's devices."""

    class Platform(models.TextChoices):
        IOS = "ios"
        ANDROID = "android"
        WEB = "web"

    id = models.UUIDField(primary_key=True, editable=False)
    user_id = models.CharField(max_length=64, db_index=True)
    platform = models.CharField(max_length=8, choices=Platform.choices)
    token = models.CharField(max_length=4096)
    # sha256 of the token: the unique key per user and how a token is found on every shard
    # when it moves to another user (tokens can be longer than a btree entry may be).
    token_hash = models.CharField(max_length=64, db_index=True)
    active = models.BooleanField(default=True)
    deactivated_reason = models.CharField(max_length=64, blank=True)
    # Sends to this token that failed in a row (reset by a success): prune_devices removes
    # tokens that keep failing without the provider ever calling them unregistered.
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user_id", "token_hash"], name="uniq_device_user_token_hash")]

    def __str__(self) -> str:
        return f"{self.platform} device of {self.user_id}"

    @property
    def token_preview(self) -> str:
        return f"…{self.token[-6:]}" if len(self.token) > 6 else "…"


class ConsoleMessage(models.Model):
    """What a console (development) provider would have sent. Lives in the global database."""

    delivery_id = models.UUIDField(db_index=True)
    notification_id = models.UUIDField()
    user_id = models.CharField(max_length=64, db_index=True)
    channel = models.CharField(max_length=8, choices=CHANNEL_CHOICES)
    address = models.CharField(max_length=4096, blank=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.channel} to {self.user_id}"
