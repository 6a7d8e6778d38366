from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

CHANNEL_CHOICES = [(channel, channel) for channel in settings.CHANNELS]


class Template(models.Model):
    """What one notification type says on one channel (Django template syntax).

    ``subject`` is the email subject, or the title of a push or in-app notification;
    ``body`` is the text (email plain text, SMS, push and in-app body); ``html`` is the
    email HTML body (autoescaped); ``action_url`` is where an in-app or push tap leads.
    Variables come from the notification's ``data``.
    """

    type_key = models.SlugField(max_length=64, help_text="Key of the notification type")
    channel = models.CharField(max_length=8, choices=CHANNEL_CHOICES)
    subject = models.CharField(max_length=255, blank=True)
    body = models.TextField()
    html = models.TextField(blank=True)
    action_url = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["type_key", "channel"], name="uniq_template_type_channel")]
        ordering = ["type_key", "channel"]

    def __str__(self) -> str:
        return f"{self.type_key} / {self.channel}"

    def clean(self) -> None:
        from templates_app.rendering import validate_sources

        errors = validate_sources(subject=self.subject, body=self.body, html=self.html, action_url=self.action_url)
        if errors:
            raise ValidationError(errors)
