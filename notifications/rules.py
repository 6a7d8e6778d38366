"""The validation rules for data this app stores, written once.

The API's request models, the admin's forms and the management commands all call these
functions (through the small adapters at the bottom), so a phone number, a time zone or a
scope is judged the same way whichever door it comes through. Each rule returns the
normalized value or raises :class:`RuleViolation` with a code and a message that names the
problem (the caller knows the field).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Collection, Iterable
from typing import Any

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.utils.deconstruct import deconstructible

from config.sharding import USER_ID_PATTERN
from delivery.services import devices


class RuleViolation(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


TYPE_KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
LOCALE_PATTERN = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
# Printable text with at least one visible character (an idempotency key names a request).
IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$")
_TIMEZONES = frozenset(zoneinfo.available_timezones())

USER_ID_MESSAGE = "must be 1-64 characters of letters, digits and _ . : @ -"
TYPE_KEY_MESSAGE = "must be a notification type key (lowercase letters, digits, _ and -)"


def user_id(value: str) -> str:
    if not isinstance(value, str) or not USER_ID_PATTERN.match(value):
        raise RuleViolation("invalid_user_id", USER_ID_MESSAGE)
    return value


def email(value: str) -> str:
    value = value.strip()
    if len(value) > 320:
        raise RuleViolation("invalid_email", "is longer than 320 characters")
    try:
        validate_email(value)
    except DjangoValidationError:
        raise RuleViolation("invalid_email", "is not a valid email address") from None
    return value


def phone(value: str) -> str:
    """A phone number in E.164 (``+15551234567``), the only form the SMS providers take."""
    try:
        number = phonenumbers.parse(value.strip(), None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise RuleViolation("invalid_phone", "is not a valid phone number in international format (+15551234567)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def locale(value: str) -> str:
    value = value.strip()
    if len(value) > 35 or not LOCALE_PATTERN.match(value):
        raise RuleViolation("invalid_locale", "must be a language tag such as en, fr-CA or pt-BR")
    return value.replace("_", "-")


def timezone_name(value: str) -> str:
    value = value.strip()
    if value not in _TIMEZONES:
        raise RuleViolation("invalid_timezone", "must be an IANA time zone such as Europe/Paris")
    return value


def device_token(value: str) -> str:
    try:
        return devices.check_token(value)
    except devices.InvalidDeviceToken as exc:
        raise RuleViolation(exc.code, str(exc)) from None


def type_key(value: str) -> str:
    if not TYPE_KEY_PATTERN.match(value):
        raise RuleViolation("invalid_type", TYPE_KEY_MESSAGE)
    return value


def channels(values: Any) -> list[str]:
    if not isinstance(values, list) or not values:
        raise RuleViolation("invalid_channels", f"must be a non-empty list drawn from {', '.join(settings.CHANNELS)}")
    unknown = [value for value in values if value not in settings.CHANNELS]
    if unknown:
        raise RuleViolation("unknown_channel", f"unknown channel(s) {', '.join(map(str, unknown))}; use {', '.join(settings.CHANNELS)}")
    if len(set(values)) != len(values):
        raise RuleViolation("duplicate_channel", "lists a channel twice")
    return list(values)


def fallback_channels(values: Any) -> list[str]:
    """A type's fallback chain: empty (no fallback), or at least two channels in the order
    they are tried (each one's permanent failure hands over to the next). In-app can only
    start a chain: its inbox item is written when the notification is accepted, so it cannot
    wait on standby."""
    if values in (None, []):
        return []
    values = channels(values)
    if len(values) < 2:
        raise RuleViolation("fallback_too_short", "name at least two channels (the first falls back to the second)")
    if "inapp" in values[1:]:
        raise RuleViolation("inapp_fallback", "inapp can only start a fallback chain, not stand in for another channel")
    return values


def scopes(values: Iterable[str], known: Collection[str]) -> list[str]:
    values = list(values)
    unknown = sorted({value for value in values if value not in known})
    if unknown:
        raise RuleViolation("unknown_scope", f"unknown scope(s) {', '.join(unknown)}; use {', '.join(known)}")
    return sorted(set(values), key=list(known).index)


def allowed_types(values: Iterable[str], known: Collection[str]) -> list[str]:
    """Type keys a client may send: existing keys, or ``*`` alone for every type."""
    values = [value.strip() for value in values if value and value.strip()]
    if not values:
        raise RuleViolation("required", "name at least one notification type, or * for all")
    if "*" in values:
        if len(values) > 1:
            raise RuleViolation("invalid_types", "* already means every type; give * alone")
        return ["*"]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise RuleViolation("unknown_type", f"unknown notification type(s) {', '.join(unknown)}")
    return sorted(set(values))


def existing_type_key(value: str, known: Collection[str]) -> str:
    type_key(value)
    if value not in known:
        raise RuleViolation("unknown_type", f"unknown notification type '{value}'")
    return value


# --- adapters -----------------------------------------------------------------------------


@deconstructible(path="notifications.rules.RuleValidator")
class RuleValidator:
    """A model/form field validator running the rule named ``rule`` of this module (blank
    values are the field's own business). A class, not a closure, so migrations can name it."""

    def __init__(self, rule: str):
        self.rule = rule

    def __call__(self, value: Any) -> None:
        if value in (None, ""):
            return
        try:
            globals()[self.rule](value)
        except RuleViolation as violation:
            raise DjangoValidationError(violation.message, code=violation.code) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleValidator) and other.rule == self.rule


def django_error(violation: RuleViolation) -> DjangoValidationError:
    return DjangoValidationError(violation.message, code=violation.code)
