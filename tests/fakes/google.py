"""Google's OAuth token endpoint and FCM HTTP v1 send (filled in with the FCM provider)."""

from __future__ import annotations

from tests.fakes.server import FakeProviders


def install(server: FakeProviders) -> None:
    pass
