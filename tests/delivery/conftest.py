import pytest
from django.test import override_settings

from delivery.providers import reset_providers
from tests.support.providers import ScriptedProvider

SCRIPTED = "tests.support.providers.ScriptedProvider"


@pytest.fixture
def scripted():
    """Every channel's provider is the scripted one (our own claim/retry logic in isolation)."""
    ScriptedProvider.reset()
    with override_settings(NOTIFY_PROVIDERS={c: SCRIPTED for c in ("email", "sms", "push", "inapp")}):
        reset_providers()
        yield ScriptedProvider
    ScriptedProvider.reset()


@pytest.fixture
def staff():
    """A logged-in staff user's browser."""
    from tests.support.admin import staff_client

    return staff_client()
