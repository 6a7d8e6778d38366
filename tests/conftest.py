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
