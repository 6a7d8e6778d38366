"""Devices are keyed by a hash of their token (found on every shard when a token moves to
another user); queued deliveries get the index the sweep's lost-message check uses."""

import hashlib

from django.db import migrations, models


def hash_tokens(apps, schema_editor):
    Device = apps.get_model("delivery", "Device")
    alias = schema_editor.connection.alias
    for device in Device.objects.using(alias).only("id", "token").iterator():
        Device.objects.using(alias).filter(id=device.id).update(
            token_hash=hashlib.sha256(device.token.encode("utf-8")).hexdigest()
        )


class Migration(migrations.Migration):
    dependencies = [("delivery", "0002_delivery_republish_at")]

    operations = [
        migrations.AddField(
            model_name="device",
            name="token_hash",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(hash_tokens, migrations.RunPython.noop, hints={"model_name": "device"}),
        migrations.AlterField(
            model_name="device", name="token_hash", field=models.CharField(db_index=True, max_length=64)
        ),
        migrations.RemoveConstraint(model_name="device", name="uniq_device_user_token"),
        migrations.AddConstraint(
            model_name="device",
            constraint=models.UniqueConstraint(fields=("user_id", "token_hash"), name="uniq_device_user_token_hash"),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="republish_at",
            field=models.DateTimeField(
                blank=True, help_text="still queued by then: the sweep publishes it again (a backstop)", null=True
            ),
        ),
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(
                condition=models.Q(("status", "queued")),
                fields=["channel", "priority", "published_at"],
                name="delivery_queued_idx",
            ),
        ),
    ]
