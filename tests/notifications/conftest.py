import pytest

from tests.support.admin import staff_client


@pytest.fixture
def staff():
    """A logged-in staff user's browser."""
    return staff_client()
