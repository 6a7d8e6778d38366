"""The router keeps global tables global and user rows on their shard."""

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections

from config.db_router import ShardNotChosen
from delivery.models import ConsoleMessage, Delivery, Device
from notifications.models import ApiClient, InboxItem, Notification, NotificationType, Recipient
from templates_app.models import Template
from tests.support.factories import make_recipient, user_on

pytestmark = pytest.mark.django_db(databases="__all__")

SHARDED = (Recipient, Notification, InboxItem, Delivery, Device)
GLOBAL = (NotificationType, ApiClient, Template, ConsoleMessage)


def tables(alias: str) -> set[str]:
    return set(connections[alias].introspection.table_names())


def test_each_database_has_exactly_its_tables():
    for alias in settings.SHARD_ALIASES:
        assert {m._meta.db_table for m in SHARDED} <= tables(alias)
        assert not {m._meta.db_table for m in GLOBAL} & tables(alias)
        assert "auth_user" not in tables(alias)
    assert not {m._meta.db_table for m in SHARDED} & tables("default")
    assert {m._meta.db_table for m in GLOBAL} <= tables("default")


def test_a_sharded_query_without_a_shard_is_refused():
    with pytest.raises(ShardNotChosen, match="for_user"):
        list(Notification.objects.all())
    with pytest.raises(ShardNotChosen):
        Recipient.objects.create(user_id=None)


def test_loaded_rows_stay_on_their_shard(shards):
    user = user_on(shards[1])
    recipient = make_recipient(user)
    loaded = Recipient.objects.for_user(user).get(user_id=user)
    loaded.locale = "de"
    loaded.save()  # routed by the instance's own database
    assert Recipient.objects.using(shards[1]).get(user_id=user).locale == "de"
    assert not Recipient.objects.using(shards[0]).filter(user_id=user).exists()
    assert recipient._state.db == shards[1]


def test_new_instances_route_by_their_user_id(shards):
    from django.utils import timezone

    user = user_on(shards[0])
    now = timezone.now()
    Recipient(user_id=user, created_at=now, updated_at=now).save()
    assert Recipient.objects.using(shards[0]).filter(user_id=user).exists()


def test_migrate_covers_every_database(capsys):
    call_command("migrate", verbosity=1, interactive=False)
    out = capsys.readouterr().out
    for alias in ["default", *settings.SHARD_ALIASES]:
        assert f"Database {alias}:" in out
    call_command("migrate", database=settings.SHARD_ALIASES[0], verbosity=1, interactive=False)
    assert "Database" not in capsys.readouterr().out
