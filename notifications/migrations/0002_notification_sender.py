"""Notifications name their sender (an API client, a campaign or the system) instead of an API
client id, and idempotency keys are unique per sender; recipient fields carry the shared rules."""

from django.db import migrations, models
from django.db.models import CharField, Value
from django.db.models.functions import Cast, Concat

import notifications.rules


def senders_from_client_ids(apps, schema_editor):
    Notification = apps.get_model("notifications", "Notification")
    Notification.objects.using(schema_editor.connection.alias).update(
        sender=Concat(Value("client:"), Cast("client_id", CharField()))
    )


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="sender",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(senders_from_client_ids, migrations.RunPython.noop, hints={"model_name": "notification"}),
        migrations.RemoveConstraint(model_name="notification", name="uniq_notification_idempotency"),
        migrations.RemoveField(model_name="notification", name="client_id"),
        migrations.AlterField(
            model_name="notification",
            name="sender",
            field=models.CharField(
                help_text="Who sent it: client:<api client id>, campaign:<id> or system:<name>", max_length=64
            ),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.UniqueConstraint(fields=("sender", "idempotency_key"), name="uniq_notification_sender_key"),
        ),
        migrations.AlterField(
            model_name="notification",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("queued", "queued for sending"),
                    ("scheduled", "scheduled for later"),
                    ("undeliverable", "undeliverable (every channel skipped)"),
                ],
                max_length=24,
                verbose_name="accepted as",
            ),
        ),
        migrations.AlterField(
            model_name="recipient",
            name="user_id",
            field=models.CharField(
                max_length=64, primary_key=True, serialize=False, validators=[notifications.rules.RuleValidator("user_id")]
            ),
        ),
        migrations.AlterField(
            model_name="recipient",
            name="email",
            field=models.EmailField(blank=True, max_length=320, validators=[notifications.rules.RuleValidator("email")]),
        ),
        migrations.AlterField(
            model_name="recipient",
            name="email_bounced",
            field=models.BooleanField(
                default=False, help_text="Set when mail to this address bounced; cleared when the address changes."
            ),
        ),
        migrations.AlterField(
            model_name="recipient",
            name="phone",
            field=models.CharField(
                blank=True,
                help_text="International format, e.g. +14155550101",
                max_length=20,
                validators=[notifications.rules.RuleValidator("phone")],
            ),
        ),
        migrations.AlterField(
            model_name="recipient",
            name="locale",
            field=models.CharField(
                blank=True,
                help_text="Language tag, e.g. en, fr-CA",
                max_length=35,
                validators=[notifications.rules.RuleValidator("locale")],
            ),
        ),
        migrations.AlterField(
            model_name="recipient",
            name="timezone",
            field=models.CharField(
                blank=True,
                help_text="IANA time zone, e.g. Europe/Paris",
                max_length=64,
                validators=[notifications.rules.RuleValidator("timezone_name")],
            ),
        ),
    ]
