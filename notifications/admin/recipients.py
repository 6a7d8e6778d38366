"""Recipients: contact data checked and stored by the same service as the API's PUT."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from config.admin_sharding import UserKeyedShardedModelAdmin, admin_link
from config.sharding import USER_ID_PATTERN
from notifications.admin.forms import RecipientForm
from notifications.models import Recipient
from notifications.services.recipients import put_recipient

# What a recipient page links to: changelists filtered to the user (exact user id).
_USER_ROWS = (
    ("notifications", "admin:notifications_notification_changelist"),
    ("deliveries", "admin:delivery_delivery_changelist"),
    ("devices", "admin:delivery_device_changelist"),
    ("inbox", "admin:notifications_inboxitem_changelist"),
)


def user_rows_links(user_id: str) -> str:
    query = "?" + urlencode({"user_id": user_id})
    return format_html_join(" · ", "{}", ((admin_link(name, label, query=query),) for label, name in _USER_ROWS))


@admin.register(Recipient)
class RecipientAdmin(UserKeyedShardedModelAdmin):
    form = RecipientForm
    list_display = ("user_id", "email", "phone", "locale", "timezone", "email_bounced", "updated_at")
    ordering = ("-updated_at",)
    search_fields = ("user_id",)  # shows the search box; search_condition does the matching
    search_help_text = "A user id or its beginning, or an email address or its beginning."
    fields = (
        "user_id",
        "related",
        "email",
        "email_verified",
        "email_bounced",
        "phone",
        "phone_verified",
        "phone_unreachable",
        "locale",
        "timezone",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("related", "phone_unreachable", "created_at", "updated_at")

    def search_condition(self, term: str) -> Q | None:
        condition = Q(email__istartswith=term)
        return condition | Q(user_id__startswith=term) if USER_ID_PATTERN.match(term) else condition

    def get_fields(self, request, obj=None):
        if obj is None:  # nothing to link to, no timestamps yet
            return [name for name in self.fields if name not in self.readonly_fields]
        return self.fields

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "user_id") if obj else self.readonly_fields

    @admin.display(description="their rows")
    def related(self, obj: Recipient) -> str:
        return user_rows_links(obj.user_id)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # User ids across the admin link here, but a user may have rows and no contact record
        # (an in-app-only user): offer to add one rather than a "does not exist" dead end.
        user_id = unquote(object_id)
        if request.method == "GET" and USER_ID_PATTERN.match(user_id) and self.get_object(request, user_id) is None:
            self.message_user(
                request,
                format_html("{} has no contact record yet; add one here. Their rows: {}", user_id, user_rows_links(user_id)),
                messages.INFO,
            )
            return HttpResponseRedirect(reverse("admin:notifications_recipient_add") + "?" + urlencode({"user_id": user_id}))
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        # The API's service: normalized values, and a new email address starts unbounced.
        recipient, _ = put_recipient(
            obj.user_id, form.contact, email_bounced=bool(form.cleaned_data.get("email_bounced"))
        )
        for field in Recipient._meta.concrete_fields:
            setattr(obj, field.attname, getattr(recipient, field.attname))
        obj._state.adding = False
        obj._state.db = recipient._state.db
