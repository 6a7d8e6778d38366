"""A provider whose behaviour a test scripts: for testing our retry and claim logic in isolation."""

from __future__ import annotations

from typing import ClassVar, Sequence

from delivery.providers import (
    OutboundMessage,
    PermanentDeliveryError,
    SendResult,
    TemporaryDeliveryError,
)


class ScriptedProvider:
    name = "scripted"
    script: ClassVar[list[str]] = []  # next outcomes: ok, temporary, permanent, crash, drop, mixed
    calls: ClassVar[list[list[OutboundMessage]]] = []
    available: ClassVar[bool] = True

    def __init__(self, *, channel: str):
        self.channel = channel

    @classmethod
    def reset(cls) -> None:
        cls.script = []
        cls.calls = []
        cls.available = True

    def is_available(self) -> bool:
        return self.available

    def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        self.calls.append(list(messages))
        action = self.script.pop(0) if self.script else "ok"
        if action == "temporary":
            raise TemporaryDeliveryError("provider answered 503")
        if action == "crash":
            raise RuntimeError("boom")
        if action == "drop":
            return []
        if action == "permanent":
            error = PermanentDeliveryError("address rejected", reason="invalid_address")
            return [SendResult(m.delivery_id, error=error) for m in messages]
        if action == "mixed":  # per message: sent, rejected, temporarily failed, in turn
            outcomes = [
                lambda m: SendResult(m.delivery_id, provider_message_id=f"scripted-{m.delivery_id}"),
                lambda m: SendResult(m.delivery_id, error=PermanentDeliveryError("rejected", reason="invalid_address")),
                lambda m: SendResult(m.delivery_id, error=TemporaryDeliveryError("busy")),
            ]
            return [outcomes[i % 3](m) for i, m in enumerate(messages)]
        return [SendResult(m.delivery_id, provider_message_id=f"scripted-{m.delivery_id}") for m in messages]
