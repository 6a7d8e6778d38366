"""Driving the admin as an operator does: a logged-in staff user and Django's test client."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.test import Client


def staff_client(username: str = "operator") -> Client:
    get_user_model().objects.create_user(username, password="pw", is_staff=True, is_superuser=True)
    client = Client()
    assert client.login(username=username, password="pw")
    return client


def form_errors(response) -> dict[str, list[str]]:
    """The errors an add/change form shows next to each field ("__all__" above the form)."""
    assert response.status_code == 200, f"expected the form again, got {response.status_code}"
    form = response.context["adminform"].form
    return {field: list(errors) for field, errors in form.errors.items()}


def page_text(response) -> str:
    return response.content.decode()


def row_ids(response) -> list[str]:
    """The primary keys of a changelist's rows, in the order the page shows them."""
    return re.findall(r'name="_selected_action" value="([^"]+)"', page_text(response))


def cell(response, row_id: str, column: str) -> str:
    """The HTML of one cell of a changelist row (``column`` is the list_display name)."""
    text = page_text(response)
    row = re.search(rf'<tr>(?:(?!</tr>).)*value="{re.escape(row_id)}"(?:(?!</tr>).)*</tr>', text, re.S)
    assert row, f"no row {row_id} on the page"
    found = re.search(rf'<t[hd] class="field-{column}[^"]*">(.*?)</t[hd]>', row.group(0), re.S)
    assert found, f"no {column} column in row {row_id}"
    return found.group(1)
