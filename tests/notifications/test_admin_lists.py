"""Changelists of sharded models list every shard by default, newest first, with bounded
counts; the shard filter narrows to one shard; search finds user id prefixes, emails and ids."""

import pytest
from django.contrib import admin

from config.sharding import new_id, parse_routable_id
from delivery.models import Delivery
from notifications.models import Notification, Recipient
from tests.support.admin import page_text, row_ids
from tests.support.factories import make_recipient, send_body, user_on

pytestmark = pytest.mark.django_db(databases="__all__")


def send(api, user, **overrides) -> str:
    response = api.post("/api/v1/notifications", send_body(user, **overrides), format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_recipients_of_every_shard_are_listed_by_default(staff, shards):
    on_0, on_1 = user_on(shards[0], "zed"), user_on(shards[1], "yan")
    make_recipient(on_0)
    make_recipient(on_1)
    assert set(row_ids(staff.get("/admin/notifications/recipient/"))) == {on_0, on_1}
    assert row_ids(staff.get(f"/admin/notifications/recipient/?shard={shards[1]}")) == [on_1]
    assert row_ids(staff.get(f"/admin/notifications/recipient/?shard={shards[0]}")) == [on_0]


def test_recipients_are_listed_most_recently_updated_first(staff, shards):
    first, second, third = user_on(shards[0], "r"), user_on(shards[1], "r"), user_on(shards[0], "r")
    for user in (first, second, third):
        make_recipient(user)
    make_recipient(first, email="changed@example.com")  # updated last
    assert row_ids(staff.get("/admin/notifications/recipient/")) == [first, third, second]


def test_notifications_of_all_shards_merge_newest_first_and_page(staff, api, shards, monkeypatch):
    sent = [send(api, user_on(shards[i % 2]), channels=["inapp"]) for i in range(5)]
    newest_first = sent[::-1]
    assert row_ids(staff.get("/admin/notifications/notification/")) == newest_first
    monkeypatch.setattr(type(admin.site._registry[Notification]), "list_per_page", 2)
    pages = [row_ids(staff.get(f"/admin/notifications/notification/?p={page}")) for page in (1, 2, 3)]
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]
    assert "5 notifications" in page_text(staff.get("/admin/notifications/notification/"))


def test_counts_and_listing_are_bounded_per_shard(staff, shards, monkeypatch):
    monkeypatch.setattr(type(admin.site._registry[Recipient]), "shard_row_cap", 2, raising=False)
    for _ in range(3):
        make_recipient(user_on(shards[0], "many"))
    make_recipient(user_on(shards[1], "one"))
    response = staff.get("/admin/notifications/recipient/")
    assert "3+ recipients" in page_text(response)  # at least: a shard holds more than the cap
    assert len(row_ids(response)) == 2  # only the newest rows that are known to be the newest


def test_search_by_user_id_prefix_covers_every_shard(staff, api, shards):
    acme = [user_on(shards[0], "acme"), user_on(shards[1], "acme")]
    other = user_on(shards[1], "zeta")
    mine = {send(api, user, channels=["inapp"]) for user in acme}
    send(api, other, channels=["inapp"])
    assert set(row_ids(staff.get("/admin/notifications/notification/?q=acme-"))) == mine
    for user in (*acme, other):
        make_recipient(user)
    assert set(row_ids(staff.get("/admin/notifications/recipient/?q=acme"))) == set(acme)


def test_recipients_can_be_found_by_email(staff, shards):
    ada = user_on(shards[1], "u")
    make_recipient(ada, email="Ada.Lovelace@example.com")
    make_recipient(user_on(shards[0], "u"), email="grace@example.com")
    assert row_ids(staff.get("/admin/notifications/recipient/?q=ada.lovelace@example.com")) == [ada]
    assert row_ids(staff.get("/admin/notifications/recipient/?q=ada.love")) == [ada]


def test_search_by_exact_id(staff, api, shards):
    wanted = send(api, user_on(shards[1]), channels=["inapp", "push"])
    send(api, user_on(shards[0]), channels=["inapp"])
    assert row_ids(staff.get(f"/admin/notifications/notification/?q={wanted}")) == [wanted]
    deliveries = {str(d.id) for d in Delivery.objects.using(shards[1]).filter(notification_id=wanted)}
    assert set(row_ids(staff.get(f"/admin/delivery/delivery/?q={wanted}"))) == deliveries
    one = sorted(deliveries)[0]
    assert row_ids(staff.get(f"/admin/delivery/delivery/?q={one}")) == [one]


def test_exact_user_filter_does_not_match_longer_ids(staff, api, shards):
    pat, patrick = "pat", "patrick"
    make_recipient(pat)
    make_recipient(patrick)
    mine = send(api, pat, channels=["inapp"])
    send(api, patrick, channels=["inapp"])
    assert row_ids(staff.get("/admin/notifications/notification/?user_id=pat")) == [mine]
    assert row_ids(staff.get("/admin/notifications/recipient/?user_id=pat")) == [pat]
    assert Recipient.objects.for_user(pat).filter(user_id=pat).exists()


def test_other_filters_combine_with_all_shards(staff, api, shards):
    low = [send(api, user_on(shards[i]), channels=["inapp"], priority="low") for i in (0, 1)]
    send(api, user_on(shards[0]), channels=["inapp"], priority="high")
    assert set(row_ids(staff.get("/admin/notifications/notification/?priority__exact=low"))) == set(low)
    category = page_text(staff.get("/admin/notifications/notification/?category=transactional"))
    assert category.count('name="_selected_action"') == 3


def test_a_user_id_that_looks_like_a_row_id_is_still_found(staff, api, shards):
    """Platforms often use UUIDv7 user ids; their bits name no shard, so the search looks for
    a row id and for that user on every shard."""
    user = str(new_id(0))
    assert parse_routable_id(user) is not None
    mine = send(api, user, channels=["inapp"])
    assert row_ids(staff.get(f"/admin/notifications/notification/?q={user}")) == [mine]


def test_recipients_selected_on_both_shards_are_deleted_after_confirmation(staff, shards):
    users = [user_on(shards[0], "gone"), user_on(shards[1], "gone")]
    kept = user_on(shards[1], "kept")
    for user in (*users, kept):
        make_recipient(user)
    action = {"action": "delete_selected", "_selected_action": users}
    assert "Are you sure" in page_text(staff.post("/admin/notifications/recipient/", action))
    done = staff.post("/admin/notifications/recipient/", {**action, "post": "yes"}, follow=True)
    assert "Successfully deleted 2 recipients" in page_text(done)
    assert row_ids(done) == [kept]
