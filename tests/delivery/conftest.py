import pytest


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
