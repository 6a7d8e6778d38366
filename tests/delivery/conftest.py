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


@pytest.fixture(scope="session")
def fake_server():
    """The fake provider server (SendGrid, Twilio, Google OAuth and FCM), one per test run."""
    from tests.fakes import google, sendgrid, twilio
    from tests.fakes.server import FakeProviders

    server = FakeProviders(tls_hosts=[google.FCM_HOST, google.IAM_HOST])
    for module in (sendgrid, twilio, google):
        module.install(server)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fakes(fake_server):
    """The fake provider server, with no script and no recorded request."""
    fake_server.reset()
    yield fake_server
    fake_server.reset()
