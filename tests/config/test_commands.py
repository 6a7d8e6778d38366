"""Operator commands."""

import pytest
from django.core.management import CommandError, call_command

from notifications.models import ApiClient
from notifications.services.api_keys import authenticate_key, hash_key

pytestmark = pytest.mark.django_db(databases="__all__")


def test_create_api_client_prints_the_key_once_and_stores_its_hash(capsys, demo_catalog):
    call_command("create_api_client", "payments", "--types", "payment_confirmed,order_shipped", "--critical")
    key = capsys.readouterr().out.strip()
    client = ApiClient.objects.get(name="payments")
    assert key.startswith("nk_") and key not in str(client.__dict__)
    assert client.key_hash == hash_key(key)
    assert client.allowed_types == ["payment_confirmed", "order_shipped"]
    assert client.may_send_critical is True
    assert authenticate_key(key).name == "payments"


def test_create_api_client_defaults_and_errors(capsys, demo_catalog):
    call_command("create_api_client", "everything")
    client = ApiClient.objects.get(name="everything")
    assert (client.allowed_types, client.may_send_critical) == (["*"], False)
    assert sorted(client.scopes) == ["recipients", "send", "status"]
    with pytest.raises(CommandError, match="unknown notification type"):
        call_command("create_api_client", "x", "--types", "nope")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_api_client", "everything")
    with pytest.raises(CommandError, match="unknown scope"):
        call_command("create_api_client", "y", "--scopes", "root")


def test_seed_demo_is_repeatable(capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    from notifications.models import NotificationType, Recipient
    from templates_app.models import Template

    assert sorted(NotificationType.objects.values_list("key", flat=True)) == [
        "order_shipped", "payment_confirmed", "promotion", "security_alert"
    ]  # fmt: skip
    assert Template.objects.count() == 16
    assert Recipient.objects.for_user("alice").get(user_id="alice").phone == "+14155550101"
    assert ApiClient.objects.filter(name="demo").count() == 1
    security = NotificationType.objects.get(key="security_alert")
    assert (security.category, security.required, security.allow_critical) == ("security", True, True)


def test_worker_command_refuses_unknown_pools():
    with pytest.raises(CommandError, match="unknown worker pool"):
        call_command("worker", "fax")
