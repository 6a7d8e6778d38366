"""`manage.py seed_demo`: the catalog anywhere, the published demo credentials only locally,
and never an overwrite of what an operator changed."""

import subprocess
import sys

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command, load_command_class

from notifications.models import ApiClient, NotificationType
from notifications.services.api_keys import authenticate_key, hash_key
from notifications.services.demo import database_is_empty, demo_access
from notifications.services.recipients import clean_contact, get_recipient, put_recipient
from templates_app.models import Template
from tests.support.processes import ROOT, service_env

pytestmark = pytest.mark.django_db(databases="__all__")

DEMO_KEY = "nk_demo0000_localdemokeyforembeddedprofileonly"


@pytest.fixture
def embedded(settings):
    settings.PROFILE = "embedded"
    settings.EMBEDDED = True


@pytest.fixture
def services(settings):
    settings.PROFILE = "services"
    settings.EMBEDDED = False


def _demo_types() -> list[str]:
    return sorted(NotificationType.objects.values_list("key", flat=True))


def test_without_flags_outside_the_embedded_profile_only_the_catalog_is_created(services, capsys):
    call_command("seed_demo")
    assert _demo_types() == ["order_shipped", "payment_confirmed", "promotion", "security_alert"]
    assert Template.objects.count() == 16
    assert not get_user_model().objects.exists()
    assert not ApiClient.objects.exists()
    assert get_recipient("alice") is None
    assert "demo catalog ready" in capsys.readouterr().out


def test_in_the_embedded_profile_the_demo_login_key_and_recipients_are_created(embedded):
    call_command("seed_demo")
    call_command("seed_demo")  # repeatable

    assert authenticate(username="admin", password="admin").is_superuser
    assert ApiClient.objects.filter(name="demo").count() == 1
    assert authenticate_key(DEMO_KEY).name == "demo"
    assert get_recipient("alice").phone == "+14155550101"
    assert Template.objects.count() == 16
    security = NotificationType.objects.get(key="security_alert")
    assert (security.category, security.required, security.allow_critical) == ("security", True, True)


def test_demo_credentials_flag_is_refused_in_the_services_profile_before_writing_anything(services):
    with pytest.raises(CommandError, match="refusing to install them in the services profile"):
        call_command("seed_demo", "--demo-credentials")
    assert database_is_empty()
    assert get_recipient("alice") is None


def test_demo_credentials_flag_exits_non_zero_in_a_services_process():
    env = service_env(NOTIFY_PROFILE="services", SECRET_KEY="services-profile-secret-key-for-this-test-0123456789")
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo", "--demo-credentials"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "refusing to install them in the services profile" in result.stderr
    assert "createsuperuser" in result.stderr


def test_demo_credentials_flag_works_in_the_local_test_profile():
    call_command("seed_demo", "--demo-credentials")
    assert authenticate(username="admin", password="admin") is not None
    assert authenticate_key(DEMO_KEY) is not None


def test_seeding_again_keeps_every_change_an_operator_made(embedded):
    call_command("seed_demo")
    Template.objects.filter(type_key="order_shipped", channel="email").update(body="Edited by the operator")
    Template.objects.filter(type_key="promotion", channel="sms").delete()  # on purpose: no promotional SMS
    NotificationType.objects.filter(key="order_shipped").update(name="Parcel on its way")
    put_recipient("alice", clean_contact({"email": "alice@new.example"}))
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("a-better-password")
    admin.save()
    ApiClient.objects.filter(name="demo").update(is_active=False)

    call_command("seed_demo")

    assert Template.objects.get(type_key="order_shipped", channel="email").body == "Edited by the operator"
    assert not Template.objects.filter(type_key="promotion", channel="sms").exists()
    assert NotificationType.objects.get(key="order_shipped").name == "Parcel on its way"
    assert get_recipient("alice").email == "alice@new.example"
    assert authenticate(username="admin", password="admin") is None
    assert ApiClient.objects.get(name="demo").is_active is False


def test_help_describes_the_real_flags():
    text = load_command_class("notifications", "seed_demo").create_parser("manage.py", "seed_demo").format_help()
    assert "--catalog-only" in text and "--demo-credentials" in text
    assert "--users" not in text
    assert "services profile" in text


def test_demo_access_reports_only_the_credentials_that_still_work(embedded):
    call_command("seed_demo")
    assert demo_access().admin_username == "admin" and demo_access().api_key == DEMO_KEY

    admin = get_user_model().objects.get(username="admin")
    admin.set_password("changed")
    admin.save()
    assert (demo_access().admin_username, demo_access().admin_password) == (None, None)
    admin.set_password("admin")
    admin.is_active = False
    admin.save()
    assert demo_access().admin_username is None

    ApiClient.objects.filter(name="demo").update(is_active=False)
    assert demo_access().api_key is None
    ApiClient.objects.filter(name="demo").update(is_active=True, key_hash=hash_key("nk_demo0000_anotherkey"))
    assert demo_access().api_key is None
    ApiClient.objects.filter(name="demo").delete()
    assert demo_access().api_key is None


def test_the_database_is_empty_until_anything_exists():
    assert database_is_empty()
    call_command("seed_demo", "--catalog-only")
    assert not database_is_empty()
