"""Providers send deliveries to the outside world; one module per provider.

The contract is modelled on Django's email backends: a small class per provider, registered
by name in ``settings.NOTIFY_PROVIDER_CLASSES``; each channel lists its providers in order of
preference in ``settings.NOTIFY_PROVIDERS`` (:func:`providers_for`).
"""

from delivery.providers.base import (
    DeliveryError,
    OutboundMessage,
    PermanentDeliveryError,
    Provider,
    SendResult,
    TargetResult,
    TemporaryDeliveryError,
    check_configuration,
    provider_for,
    providers_for,
    reset_providers,
)

__all__ = [
    "DeliveryError",
    "OutboundMessage",
    "PermanentDeliveryError",
    "Provider",
    "SendResult",
    "TargetResult",
    "TemporaryDeliveryError",
    "check_configuration",
    "provider_for",
    "providers_for",
    "reset_providers",
]
