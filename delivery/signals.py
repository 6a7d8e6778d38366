"""What delivery tells the other apps (it imports none of them).

``address_rejected`` is sent once per delivery whose provider refused the recipient's address
for good: ``channel`` (``email`` or ``sms``), ``user_id`` and ``reason`` (one of
:data:`ADDRESS_REJECTION_REASONS`). The notifications app flags the recipient so later sends
can tell (email bounced, phone unreachable). Provider webhooks also pass ``address``, the
address the delivery went to: a bounce reported days later must not flag an address the user
has changed since.

``contact_opted_out`` is sent once per delivery whose recipient told the provider they want no
more of it: ``channel``, ``user_id`` and ``reason`` (``spamreport``, ``unsubscribe``, ``stop``).
"""

from __future__ import annotations

from django.dispatch import Signal

ADDRESS_REJECTED = "address_rejected"  # invalid or bouncing email address, invalid phone number
PHONE_UNREACHABLE = "phone_unreachable"  # a valid number that cannot receive SMS (landline, opted out)
ADDRESS_REJECTION_REASONS = frozenset({ADDRESS_REJECTED, PHONE_UNREACHABLE})

address_rejected = Signal()
contact_opted_out = Signal()

# The in-app provider published these messages to their users' live connections (the users
# were online). Sent with ``messages``: a list of delivery.providers.OutboundMessage.
# notifications marks the inbox items delivered.
inapp_published = Signal()

# The in-app provider found these users offline: the messages stay in their inboxes and no
# frame was published. Sent with ``messages`` (OutboundMessage list). The push-fallback hook:
# a receiver may queue a push for the types and users whose preferences allow it (the
# fallback-chain work connects here); nothing is connected by default.
inapp_offline = Signal()
