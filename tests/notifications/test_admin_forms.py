"""Admin forms judge data by the same rules as the API and the commands, and answer with form
errors, never a 500."""

import pytest

from notifications.models import ApiClient, ApiScope, NotificationType, Recipient
from templates_app.models import Template
from tests.support.admin import form_errors, page_text
from tests.support.factories import make_recipient, user_on

pytestmark = pytest.mark.django_db(databases="__all__")

RECIPIENT_FORM = {"email": "", "email_verified": "on", "phone": "", "phone_verified": "on", "locale": "", "timezone": ""}


def recipient_form(**fields) -> dict:
    return {**RECIPIENT_FORM, **fields}


def test_recipient_admin_rejects_what_the_api_rejects(staff, shards):
    user = user_on(shards[1], "bad")
    response = staff.post(
        "/admin/notifications/recipient/add/",
        recipient_form(user_id=user, phone="12345", timezone="Mars/Olympus", locale="english please"),
    )
    errors = form_errors(response)
    assert "valid phone number" in errors["phone"][0]
    assert "IANA time zone" in errors["timezone"][0]
    assert "language tag" in errors["locale"][0]
    assert not Recipient.objects.using(shards[1]).filter(user_id=user).exists()


def test_recipient_admin_stores_phones_in_e164_and_trims_like_the_api(staff, shards):
    user = user_on(shards[0], "norm")
    response = staff.post(
        "/admin/notifications/recipient/add/",
        recipient_form(user_id=user, phone="+1 (415) 555-0123", locale="fr_CA", timezone=" Europe/Paris "),
    )
    assert response.status_code == 302, form_errors(response)
    stored = Recipient.objects.using(shards[0]).get(user_id=user)
    assert (stored.phone, stored.locale, stored.timezone) == ("+14155550123", "fr-CA", "Europe/Paris")


def test_recipient_admin_rejects_a_bad_user_id(staff):
    response = staff.post("/admin/notifications/recipient/add/", recipient_form(user_id="no spaces allowed"))
    assert "letters, digits" in form_errors(response)["user_id"][0]


def test_adding_a_recipient_that_exists_is_a_form_error(staff, shards):
    user = user_on(shards[0], "twice")
    make_recipient(user, email="first@example.com")
    response = staff.post("/admin/notifications/recipient/add/", recipient_form(user_id=user, email="second@example.com"))
    assert "already exists" in form_errors(response)["user_id"][0]
    assert Recipient.objects.using(shards[0]).get(user_id=user).email == "first@example.com"


def test_a_new_email_address_clears_the_bounce_flag(staff, shards):
    user = user_on(shards[1], "bounced")
    make_recipient(user, email="old@example.com")
    Recipient.objects.using(shards[1]).filter(user_id=user).update(email_bounced=True)
    # The form shows the flag checked; the operator only changes the address.
    response = staff.post(
        f"/admin/notifications/recipient/{user}/change/",
        recipient_form(email="new@example.com", email_bounced="on", locale="en", timezone="UTC"),
    )
    assert response.status_code == 302, form_errors(response)
    stored = Recipient.objects.using(shards[1]).get(user_id=user)
    assert (stored.email, stored.email_bounced) == ("new@example.com", False)


def test_an_operator_can_clear_the_bounce_flag_of_the_same_address(staff, shards):
    user = user_on(shards[0], "clear")
    make_recipient(user, email="same@example.com")
    Recipient.objects.using(shards[0]).filter(user_id=user).update(email_bounced=True)
    response = staff.post(f"/admin/notifications/recipient/{user}/change/", recipient_form(email="same@example.com"))
    assert response.status_code == 302, form_errors(response)
    assert Recipient.objects.using(shards[0]).get(user_id=user).email_bounced is False


def api_client_form(**fields) -> dict:
    return {"name": "orders", "allowed_types": ["order_shipped"], "scopes": ["send"], "is_active": "on", **fields}


def test_api_client_form_offers_scopes_and_existing_types_as_choices(staff, demo_catalog):
    page = page_text(staff.get("/admin/notifications/apiclient/add/"))
    for scope in ApiScope:
        assert f'type="checkbox" name="scopes" value="{scope.value}"' in page
    for key in NotificationType.objects.values_list("key", flat=True):
        assert f'type="checkbox" name="allowed_types" value="{key}"' in page
    assert 'type="checkbox" name="allowed_types" value="*"' in page


def test_an_unknown_scope_is_a_form_error_not_a_500(staff, demo_catalog):
    response = staff.post("/admin/notifications/apiclient/add/", api_client_form(scopes=["send", "nuke"]))
    assert "nuke" in form_errors(response)["scopes"][0]
    assert not ApiClient.objects.filter(name="orders").exists()


def test_an_unknown_type_is_a_form_error(staff, demo_catalog):
    response = staff.post("/admin/notifications/apiclient/add/", api_client_form(allowed_types=["no_such_type"]))
    assert "no_such_type" in form_errors(response)["allowed_types"][0]
    assert not ApiClient.objects.filter(name="orders").exists()


def test_star_means_every_type_and_stands_alone(staff, demo_catalog):
    response = staff.post("/admin/notifications/apiclient/add/", api_client_form(allowed_types=["*", "order_shipped"]))
    assert "* already means every type" in form_errors(response)["allowed_types"][0]
    response = staff.post("/admin/notifications/apiclient/add/", api_client_form(allowed_types=["*"]))
    assert response.status_code == 302
    assert ApiClient.objects.get(name="orders").allowed_types == ["*"]


def test_changing_an_api_client_uses_the_same_rules(staff, demo_catalog):
    staff.post("/admin/notifications/apiclient/add/", api_client_form())
    client = ApiClient.objects.get(name="orders")
    response = staff.post(
        f"/admin/notifications/apiclient/{client.pk}/change/", api_client_form(allowed_types=["gone"], scopes=["bogus"])
    )
    errors = form_errors(response)
    assert "gone" in errors["allowed_types"][0] and "bogus" in errors["scopes"][0]
    response = staff.post(
        f"/admin/notifications/apiclient/{client.pk}/change/",
        api_client_form(allowed_types=["promotion", "order_shipped"], scopes=["status", "send"]),
    )
    assert response.status_code == 302, form_errors(response)
    client.refresh_from_db()
    assert (client.allowed_types, client.scopes) == (["order_shipped", "promotion"], ["send", "status"])


def type_form(**fields) -> dict:
    return {
        "key": "invoice_ready",
        "name": "Invoice ready",
        "category": "transactional",
        "default_channels": ["email", "inapp"],
        "default_priority": "normal",
        **fields,
    }


def test_notification_type_channels_are_checked_by_the_shared_rule(staff):
    errors = form_errors(staff.post("/admin/notifications/notificationtype/add/", type_form(default_channels=[])))
    assert "non-empty list" in errors["default_channels"][0]
    errors = form_errors(staff.post("/admin/notifications/notificationtype/add/", type_form(default_channels=["fax"])))
    assert "fax" in errors["default_channels"][0]
    response = staff.post("/admin/notifications/notificationtype/add/", type_form())
    assert response.status_code == 302, form_errors(response)
    assert NotificationType.objects.get(key="invoice_ready").default_channels == ["email", "inapp"]


def test_notification_type_keys_follow_the_api_rule(staff):
    errors = form_errors(staff.post("/admin/notifications/notificationtype/add/", type_form(key="Invoice")))
    assert "lowercase" in errors["key"][0]


def test_the_opt_out_flag_is_not_offered_before_preferences_exist(staff, demo_catalog):
    """Preferences are not stored yet, so "users cannot opt out" would promise nothing."""
    for url in ("/admin/notifications/notificationtype/", "/admin/notifications/notificationtype/add/"):
        page = page_text(staff.get(url))
        assert "opt out" not in page and 'name="required"' not in page and "required=" not in page
    security = NotificationType.objects.get(key="security_alert")
    response = staff.post(
        f"/admin/notifications/notificationtype/{security.pk}/change/",
        type_form(key="security_alert", name="Security alert", category="security", default_channels=["email"]),
    )
    assert response.status_code == 302, form_errors(response)
    security.refresh_from_db()
    assert security.required is True  # editing the type leaves the policy flag as seeded


def template_form(**fields) -> dict:
    return {"type_key": "order_shipped", "channel": "sms", "subject": "", "body": "Hi {{ name }}", "html": "",
            "action_url": "", **fields}  # fmt: skip


def test_template_type_is_chosen_from_existing_types(staff, demo_catalog):
    Template.objects.filter(type_key="order_shipped", channel="sms").delete()
    page = page_text(staff.get("/admin/templates_app/template/add/"))
    assert '<select name="type_key"' in page
    for key in NotificationType.objects.values_list("key", flat=True):
        assert f'<option value="{key}"' in page
    errors = form_errors(staff.post("/admin/templates_app/template/add/", template_form(type_key="ghost_type")))
    assert "ghost_type" in errors["type_key"][0]
    assert staff.post("/admin/templates_app/template/add/", template_form()).status_code == 302
    assert Template.objects.get(type_key="order_shipped", channel="sms").body == "Hi {{ name }}"


def test_template_syntax_and_link_problems_show_on_their_fields(staff, demo_catalog):
    Template.objects.filter(type_key="order_shipped", channel="push").delete()
    response = staff.post(
        "/admin/templates_app/template/add/",
        template_form(channel="push", subject="{% if %}", body="{{ name|no_such_filter }}", action_url="javascript:alert(1)"),
    )
    errors = form_errors(response)
    assert set(errors) == {"subject", "body", "action_url"}
    assert "http(s) URL" in errors["action_url"][0]
