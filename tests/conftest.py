from __future__ import annotations

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from config.redis import get_redis
from delivery.providers import reset_providers
from notifications.services import catalog
from notifications.services.demo import seed_catalog
from templates_app.rendering import template_catalog
from tests.support.factories import make_key


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Caches and Redis start empty in every test (Redis DB 15 belongs to the tests)."""
    catalog.clear()
    template_catalog.clear()
    reset_providers()
    client = get_redis()
    if client is not None:
        client.flushdb()
    yield
    catalog.clear()
    template_catalog.clear()
    reset_providers()


@pytest.fixture
def demo_catalog(django_db_blocker):
    """The demo notification types, each with a template for every channel."""
    seed_catalog()


@pytest.fixture
def api_key(demo_catalog) -> str:
    return make_key("test-client")


@pytest.fixture
def api(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


@pytest.fixture
def shards() -> list[str]:
    return list(settings.SHARD_ALIASES)


@pytest.fixture
def run_on_commit():
    """Context manager running on_commit callbacks of every database (tests run in a transaction)."""
    from contextlib import ExitStack, contextmanager

    from django.test import TestCase

    @contextmanager
    def capture():
        with ExitStack() as stack:
            for alias in settings.DATABASES:
                stack.enter_context(TestCase.captureOnCommitCallbacks(using=alias, execute=True))
            yield

    return capture


@pytest.fixture
def scripted():
    """Every channel's provider is the scripted one (our own claim/retry logic in isolation)."""
    from django.test import override_settings

    from tests.support.providers import ScriptedProvider

    ScriptedProvider.reset()
    with override_settings(NOTIFY_PROVIDERS={c: "tests.support.providers.ScriptedProvider" for c in settings.CHANNELS}):
        reset_providers()
        yield ScriptedProvider
    ScriptedProvider.reset()
