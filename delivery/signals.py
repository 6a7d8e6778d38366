"""What delivery tells the other apps (it imports none of them).

``address_rejected`` is sent once per delivery whose provider refused the recipient's address
for good: ``channel`` (``email`` or ``sms``), ``user_id`` and ``reason`` (one of
:data:`ADDRESS_REJECTION_REASONS`). The notifications app flags the recipient so later sends
can tell (email bounced, phone unreachable).
"""

from __future__ import annotations

from django.dispatch import Signal

ADDRESS_REJECTED = "address_rejected"  # invalid or bouncing email address, invalid phone number
PHONE_UNREACHABLE = "phone_unreachable"  # a valid number that cannot receive SMS (landline, opted out)
ADDRESS_REJECTION_REASONS = frozenset({ADDRESS_REJECTED, PHONE_UNREACHABLE})

address_rejected = Signal()
