"""A provider whose behaviour a test scripts: for testing our retry and claim logic in isolation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from delivery.providers import (
    OutboundMessage,
    PermanentDeliveryError,
    SendResult,
    TargetResult,
    TemporaryDeliveryError,
)


class ScriptedProvider:
    name = "scripted"
    # next outcomes: ok, temporary, retry_after=N, temporary_each, permanent, reject_batch, crash, drop, mixed
    script: ClassVar[list[str]] = []
    calls: ClassVar[list[list[OutboundMessage]]] = []
    available: ClassVar[bool] = True
    during_send: ClassVar[list] = []  # callables run inside the next sends (e.g. a concurrent API send)

    def __init__(self, *, channel: str):
        self.channel = channel

    @classmethod
    def reset(cls) -> None:
        cls.script = []
        cls.calls = []
        cls.available = True
        cls.during_send = []

    def is_available(self) -> bool:
        return self.available

    def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        self.calls.append(list(messages))
        if self.during_send:
            self.during_send.pop(0)()
        action = self.script.pop(0) if self.script else "ok"
        if action == "temporary":
            raise TemporaryDeliveryError("provider answered 503")
        if action.startswith("retry_after="):  # a 429 with Retry-After: N seconds
            raise TemporaryDeliveryError("provider answered 429", retry_after=float(action.split("=", 1)[1]))
        if action.startswith("temporary_each"):  # per message, not the whole batch
            return [SendResult(m.delivery_id, error=TemporaryDeliveryError("busy")) for m in messages]
        if action == "crash":
            raise RuntimeError("boom")
        if action == "drop":
            return []
        if action == "permanent":
            error = PermanentDeliveryError("address rejected", reason="invalid_address")
            return [SendResult(m.delivery_id, error=error) for m in messages]
        if action == "targets":  # push per device: tokens named "...gone..." are unregistered
            def target(token):
                if "gone" in token:
                    return TargetResult(token, error=PermanentDeliveryError("gone", reason="unregistered"))
                return TargetResult(token, provider_message_id=f"msg-{token}")

            return [SendResult(m.delivery_id, targets=tuple(map(target, m.device_tokens))) for m in messages]
        if action == "reject_batch":  # the whole request refused, e.g. a 400 for the batch
            raise PermanentDeliveryError("sender domain not verified", reason="sender_not_verified")
        if action == "mixed":  # per message: sent, rejected, temporarily failed, in turn
            outcomes = [
                lambda m: SendResult(m.delivery_id, provider_message_id=f"scripted-{m.delivery_id}"),
                lambda m: SendResult(m.delivery_id, error=PermanentDeliveryError("rejected", reason="invalid_address")),
                lambda m: SendResult(m.delivery_id, error=TemporaryDeliveryError("busy")),
            ]
            return [outcomes[i % 3](m) for i, m in enumerate(messages)]
        return [SendResult(m.delivery_id, provider_message_id=f"scripted-{m.delivery_id}") for m in messages]


class AlwaysRejects:
    """A provider that refuses every batch as a whole, permanently (for real worker processes,
    which cannot share a script with the test)."""

    name = "always-rejects"

    def __init__(self, *, channel: str):
        self.channel = channel

    def is_available(self) -> bool:
        return True

    def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        raise PermanentDeliveryError("the provider refused the batch", reason="rejected_by_provider")


class Unavailable(ScriptedProvider):
    """A provider whose circuit is open: the channel's next provider must be used."""

    name = "unavailable"

    def is_available(self) -> bool:
        return False


class RedisSwitched:
    """For real worker processes: fails every call (503) while the Redis key
    ``test:provider-down`` exists, else records like the console provider."""

    name = "switched"

    def __init__(self, *, channel: str):
        from delivery.providers.console import ConsoleProvider

        self.channel = channel
        self._console = ConsoleProvider(channel=channel)

    def is_available(self) -> bool:
        return True

    def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        from config.redis import get_redis

        if get_redis().exists("test:provider-down"):
            raise TemporaryDeliveryError("provider answered 503")
        return self._console.send(messages)
