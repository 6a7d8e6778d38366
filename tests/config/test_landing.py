"""`/` (the admin's "View site" link) is a landing page; unknown URLs still answer 404."""

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db(databases="__all__")


def test_landing_page_links_every_part_of_the_service():
    response = Client().get("/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    links = set(re.findall(r'href="([^"]+)"', page))
    assert {"/admin/", "/api/docs/", "/api/schema/", "/healthz", "/readyz", "/metrics"} <= links
    assert "/api/v1/notifications" in page and "create_api_client" in page
    # Self-contained: no scripts, nothing loaded from elsewhere.
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_every_landing_link_answers():
    client = Client()
    page = client.get("/").content.decode()
    links = set(re.findall(r'href="([^"]+)"', page))
    assert links
    for link in links:
        assert client.get(link).status_code in (200, 302), link  # /admin/ redirects to its login


def test_unknown_urls_are_still_404_json_under_api_and_html_elsewhere():
    client = Client()
    api = client.get("/api/v1/nothing-here")
    assert api.status_code == 404
    assert api.json()["code"] == "not_found"
    page = client.get("/nothing-here")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")
