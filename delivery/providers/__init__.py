"""Providers send deliveries to the outside world; one module per provider.

The contract is modelled on Django's email backends: a small class per provider, chosen per
channel by a dotted path in ``settings.NOTIFY_PROVIDERS`` and fetched with
:func:`provider_for`.
"""

from delivery.providers.base import (
    DeliveryError,
    OutboundMessage,
    PermanentDeliveryError,
    Provider,
    SendResult,
    TemporaryDeliveryError,
    provider_for,
    reset_providers,
)

__all__ = [
    "DeliveryError",
    "OutboundMessage",
    "PermanentDeliveryError",
    "Provider",
    "SendResult",
    "TemporaryDeliveryError",
    "provider_for",
    "reset_providers",
]
