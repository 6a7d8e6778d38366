"""Development provider: records what it would send in the ConsoleMessage table."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from django.conf import settings

from delivery.models import ConsoleMessage
from delivery.providers.base import OutboundMessage, SendResult

logger = logging.getLogger(__name__)


class ConsoleProvider:
    name = "console"

    def __init__(self, *, channel: str):
        self.channel = channel

    def is_available(self) -> bool:
        return True

    def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        if settings.CONSOLE_PROVIDER_DELAY_SECONDS:
            time.sleep(settings.CONSOLE_PROVIDER_DELAY_SECONDS)
        rows = ConsoleMessage.objects.bulk_create(
            ConsoleMessage(
                delivery_id=message.delivery_id,
                notification_id=message.notification_id,
                user_id=message.user_id,
                channel=message.channel,
                address=message.address or ",".join(message.device_tokens),
                payload=message.payload,
            )
            for message in messages
        )
        logger.debug("console provider recorded %d %s message(s)", len(rows), self.channel)
        return [
            SendResult(message.delivery_id, provider_message_id=f"console-{row.pk}")
            for message, row in zip(messages, rows, strict=True)
        ]
