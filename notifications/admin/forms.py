"""Admin forms that judge input by the shared rules (``notifications.rules``) and the same
services the API and the commands use, so every door stores the same values and a bad value
is a form error on its field, never a 500."""

from __future__ import annotations

from django import forms
from django.conf import settings

from notifications import rules
from notifications.errors import InvalidRequest
from notifications.models import ApiClient, ApiScope, NotificationType, Recipient
from notifications.services.api_keys import clean_client_fields
from notifications.services.recipients import ContactRecord, clean_contact
from templates_app.models import Template


class RuledChoiceField(forms.ChoiceField):
    """A select whose submitted value the shared rules judge (and name in their message)
    instead of Django's generic "Select a valid choice"."""

    def valid_value(self, value):
        return True


class RuledMultipleChoiceField(forms.MultipleChoiceField):
    """Checkboxes whose submitted values the shared rules judge."""

    widget = forms.CheckboxSelectMultiple

    def valid_value(self, value):
        return True


def add_problems(form: forms.Form, error: InvalidRequest) -> None:
    """Show a service's problems on the form fields they name."""
    for problem in error.problems:
        form.add_error(problem.field if problem.field in form.fields else None, problem.message)


def type_choices(current: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Existing notification types, plus any stored value that no longer exists (shown so
    the operator sees it and the rules can name it)."""
    choices = [(key, f"{key} ({name})") for key, name in NotificationType.objects.values_list("key", "name")]
    known = {key for key, _ in choices}
    return choices + [(value, f"{value} (no such type)") for value in current if value and value not in known]


# --- recipients -----------------------------------------------------------------------------


class RecipientForm(forms.ModelForm):
    # Plain text fields: clean_contact (the API's rules) judges and normalizes them, e.g. a
    # phone typed with spaces becomes E.164, so the form must not reject it by length first.
    email = forms.CharField(required=False, max_length=320)
    phone = forms.CharField(required=False, max_length=64, help_text=Recipient._meta.get_field("phone").help_text)
    locale = forms.CharField(required=False, max_length=64, help_text=Recipient._meta.get_field("locale").help_text)
    timezone = forms.CharField(required=False, max_length=64, help_text=Recipient._meta.get_field("timezone").help_text)

    contact: ContactRecord | None = None

    class Meta:
        model = Recipient
        fields = ("user_id", "email", "email_verified", "email_bounced", "phone", "phone_verified", "locale", "timezone")

    def clean(self):
        cleaned = super().clean()
        try:
            self.contact = clean_contact({name: cleaned.get(name) for name in ContactRecord.__dataclass_fields__})
        except InvalidRequest as error:
            add_problems(self, error)
            return cleaned
        for name in ("email", "phone", "locale", "timezone"):
            if name in cleaned:
                cleaned[name] = getattr(self.contact, name)
        return cleaned


# --- API clients ----------------------------------------------------------------------------


class ApiClientForm(forms.ModelForm):
    allowed_types = RuledMultipleChoiceField(
        required=False, help_text="The types this client may send; * alone for every type, now and future."
    )
    scopes = RuledMultipleChoiceField(choices=ApiScope.choices, required=False)

    class Meta:
        model = ApiClient
        fields = ("name", "allowed_types", "may_send_critical", "scopes", "is_active")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.initial.get("allowed_types") or []
        self.fields["allowed_types"].choices = [("*", "* (every type)"), *type_choices(stored)]

    def clean(self):
        cleaned = super().clean()
        try:
            fields = clean_client_fields(
                name=cleaned.get("name") or "",
                allowed_types=cleaned.get("allowed_types") or [],
                scopes=cleaned.get("scopes") or [],
                exclude_id=self.instance.pk,
            )
        except InvalidRequest as error:
            add_problems(self, error)
            return cleaned
        cleaned.update(fields)
        return cleaned


# --- notification types and templates -------------------------------------------------------


class NotificationTypeForm(forms.ModelForm):
    # Judged by rules.channels in NotificationType.clean (the model's one check).
    default_channels = RuledMultipleChoiceField(choices=[(c, c) for c in settings.CHANNELS], required=False)
    # An ordered list, so typed rather than ticked; judged by rules.fallback_channels.
    fallback_channels = forms.CharField(
        required=False,
        help_text="Channels in the order they stand in for each other, comma-separated, e.g. push, email, sms. "
        "Empty: no fallback.",
    )

    class Meta:
        model = NotificationType
        # No "required" (users cannot opt out): preferences are not stored yet, so the flag
        # would promise nothing. The policy keeps honouring the stored value.
        fields = (
            "key", "name", "description", "category", "default_channels", "fallback_channels", "default_priority",
            "allow_critical",
        )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["fallback_channels"] = ", ".join(self.instance.fallback_channels or ())

    def clean_fallback_channels(self):
        text = self.cleaned_data.get("fallback_channels") or ""
        return [part.strip() for part in text.split(",") if part.strip()]

    def clean_key(self):
        try:
            return rules.type_key(self.cleaned_data["key"])
        except rules.RuleViolation as violation:
            raise rules.django_error(violation) from None


class TemplateForm(forms.ModelForm):
    type_key = RuledChoiceField(label="Notification type")

    class Meta:
        model = Template
        fields = ("type_key", "channel", "subject", "body", "html", "action_url")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.initial.get("type_key")
        self.fields["type_key"].choices = [("", "---------"), *type_choices([current] if current else [])]

    def clean_type_key(self):
        known = set(NotificationType.objects.values_list("key", flat=True))
        try:
            return rules.existing_type_key(self.cleaned_data["type_key"], known)
        except rules.RuleViolation as violation:
            raise rules.django_error(violation) from None
