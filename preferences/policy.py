"""May we send this notification, on which channels, and why not.

A pure decision: it takes plain facts about the notification type, the recipient and their
preferences, and returns one verdict per candidate channel, each with a reason. Nothing
here reads a database, so every rule is testable in isolation and every outcome explains
itself (``manage.py`` tracing and the status API show these reasons verbatim).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

# Reasons a channel is used.
OK = "ok"
REQUIRED_OVERRIDES_OPT_OUT = "required_category"
# Reasons a channel is skipped.
NO_TEMPLATE = "no_template"
NO_EMAIL_ADDRESS = "no_email_address"
EMAIL_UNVERIFIED = "email_unverified"
EMAIL_BOUNCED = "email_bounced"
NO_PHONE_NUMBER = "no_phone_number"
PHONE_UNVERIFIED = "phone_unverified"
OPTED_OUT = "opted_out"
# Skip reasons that mean the recipient cannot be reached on the channel (rather than does
# not want it): a fallback chain moves on to its next channel.
UNREACHABLE = frozenset({NO_EMAIL_ADDRESS, EMAIL_UNVERIFIED, EMAIL_BOUNCED, NO_PHONE_NUMBER, PHONE_UNVERIFIED})

# Overall outcomes of the decision.
DELIVERABLE = "deliverable"
PREFERENCE_BLOCKED = "preference_blocked"
UNDELIVERABLE = "undeliverable"


@dataclass(frozen=True)
class TypeFacts:
    key: str
    category: str
    required: bool = False


@dataclass(frozen=True)
class RecipientFacts:
    email: str = ""
    email_verified: bool = True
    email_bounced: bool = False
    phone: str = ""
    phone_verified: bool = True


@dataclass(frozen=True)
class PreferenceFacts:
    """What the user turned off for this notification's type or category."""

    opted_out_channels: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class ChannelVerdict:
    channel: str
    send: bool
    reason: str


@dataclass(frozen=True)
class SendDecision:
    verdicts: tuple[ChannelVerdict, ...]
    channels_to_send: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels_to_send", tuple(v.channel for v in self.verdicts if v.send))

    @property
    def outcome(self) -> str:
        if self.channels_to_send:
            return DELIVERABLE
        if any(v.reason == OPTED_OUT for v in self.verdicts):
            return PREFERENCE_BLOCKED
        return UNDELIVERABLE


def _address_problem(channel: str, recipient: RecipientFacts) -> str | None:
    if channel == "email":
        if not recipient.email:
            return NO_EMAIL_ADDRESS
        if recipient.email_bounced:
            return EMAIL_BOUNCED
        if not recipient.email_verified:
            return EMAIL_UNVERIFIED
    elif channel == "sms":
        if not recipient.phone:
            return NO_PHONE_NUMBER
        if not recipient.phone_verified:
            return PHONE_UNVERIFIED
    # Push needs devices, which the delivery worker resolves when it sends (they change
    # between acceptance and sending); in-app needs nothing but the user id.
    return None


def decide(
    *,
    notification_type: TypeFacts,
    channels: tuple[str, ...],
    templates_available: Collection[str],
    recipient: RecipientFacts,
    preferences: PreferenceFacts = PreferenceFacts(),
) -> SendDecision:
    verdicts = []
    for channel in channels:
        if channel not in templates_available:
            verdicts.append(ChannelVerdict(channel, False, NO_TEMPLATE))
            continue
        problem = _address_problem(channel, recipient)
        if problem:
            verdicts.append(ChannelVerdict(channel, False, problem))
            continue
        if channel in preferences.opted_out_channels:
            if notification_type.required:
                verdicts.append(ChannelVerdict(channel, True, REQUIRED_OVERRIDES_OPT_OUT))
            else:
                verdicts.append(ChannelVerdict(channel, False, OPTED_OUT))
            continue
        verdicts.append(ChannelVerdict(channel, True, OK))
    return SendDecision(tuple(verdicts))
