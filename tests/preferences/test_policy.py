"""The send decision: one verdict with a reason per channel (pure, no database)."""

from preferences import policy
from preferences.policy import PreferenceFacts, RecipientFacts, TypeFacts, decide

ALL = frozenset({"email", "sms", "push", "inapp"})
MARKETING = TypeFacts("promotion", "marketing")
SECURITY = TypeFacts("security_alert", "security", required=True)
REACHABLE = RecipientFacts(email="a@example.com", phone="+14155550100")


def verdicts(decision) -> dict[str, tuple[bool, str]]:
    return {v.channel: (v.send, v.reason) for v in decision.verdicts}


def test_reachable_recipient_gets_every_channel():
    decision = decide(notification_type=MARKETING, channels=("email", "sms", "push", "inapp"), templates_available=ALL, recipient=REACHABLE)
    assert decision.outcome == policy.DELIVERABLE
    assert decision.channels_to_send == ("email", "sms", "push", "inapp")
    assert all(reason == policy.OK for _, reason in verdicts(decision).values())


def test_address_problems_each_have_their_reason():
    cases = {
        RecipientFacts(): ("no_email_address", "no_phone_number"),
        RecipientFacts(email="a@x.io", email_bounced=True, phone="+1", phone_verified=False): ("email_bounced", "phone_unverified"),
        RecipientFacts(email="a@x.io", email_verified=False, phone="+1"): ("email_unverified", "ok"),
    }
    for recipient, (email_reason, sms_reason) in cases.items():
        decision = decide(notification_type=MARKETING, channels=("email", "sms"), templates_available=ALL, recipient=recipient)
        assert verdicts(decision)["email"][1] == email_reason
        assert verdicts(decision)["sms"][1] == sms_reason


def test_missing_template_skips_the_channel():
    decision = decide(notification_type=MARKETING, channels=("sms", "inapp"), templates_available=frozenset({"inapp"}), recipient=REACHABLE)
    assert verdicts(decision) == {"sms": (False, "no_template"), "inapp": (True, "ok")}


def test_opt_out_blocks_unless_the_type_is_required():
    opted_out = PreferenceFacts(opted_out_channels=frozenset({"email", "push"}))
    blocked = decide(notification_type=MARKETING, channels=("email", "push"), templates_available=ALL, recipient=REACHABLE, preferences=opted_out)
    assert blocked.outcome == policy.PREFERENCE_BLOCKED
    assert verdicts(blocked) == {"email": (False, "opted_out"), "push": (False, "opted_out")}

    required = decide(notification_type=SECURITY, channels=("email", "push"), templates_available=ALL, recipient=REACHABLE, preferences=opted_out)
    assert required.outcome == policy.DELIVERABLE
    assert verdicts(required) == {"email": (True, "required_category"), "push": (True, "required_category")}


def test_nothing_reachable_is_undeliverable_not_preference_blocked():
    decision = decide(notification_type=MARKETING, channels=("email", "sms"), templates_available=ALL, recipient=RecipientFacts())
    assert decision.outcome == policy.UNDELIVERABLE
    assert decision.channels_to_send == ()


def test_push_and_inapp_need_no_address():
    decision = decide(notification_type=MARKETING, channels=("push", "inapp"), templates_available=ALL, recipient=RecipientFacts())
    assert decision.channels_to_send == ("push", "inapp")
