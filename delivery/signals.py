"""What delivery tells other apps. ``delivery`` imports no other app: apps that keep state
about deliveries (the inbox in ``notifications``) connect receivers here."""

from django.dispatch import Signal

# The in-app provider published these messages to their users' live connections (the users
# were online). Sent with ``messages``: a list of delivery.providers.OutboundMessage.
# notifications marks the inbox items delivered.
inapp_published = Signal()

# The in-app provider found these users offline: the messages stay in their inboxes and no
# frame was published. Sent with ``messages`` (OutboundMessage list). The push-fallback hook:
# a receiver may queue a push for the types and users whose preferences allow it (the
# fallback-chain work connects here); nothing is connected by default.
inapp_offline = Signal()
