"""Dead letters: the service, `manage.py dlq` and the admin's view, over both shards."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from delivery.models import Delivery, DeliveryStatus
from delivery.services import dlq
from tests.support.admin import page_text, row_ids
from tests.support.factories import make_delivery, reload

pytestmark = pytest.mark.django_db(databases="__all__")

ADMIN = "/admin/delivery/deadletter/"


def dead(alias, *, channel="email", provider="console", reason="retries_exhausted", status="dead_lettered", age=None):
    fields = dict(status=status, provider=provider, reason=reason, last_error="provider answered 503", attempts=6)
    if age is not None:
        fields["updated_at"] = timezone.now() - age
    return make_delivery(alias, channel=channel, **fields)


@pytest.fixture
def letters(shards):
    return {
        "old_email": dead(shards[0], age=timedelta(days=2)),
        "sms_failed": dead(shards[1], channel="sms", provider="twilio", reason="invalid_number", status="failed"),
        "push": dead(shards[1], channel="push", provider="fcm", reason="unexpected_error"),
        "sent": make_delivery(shards[0], status=DeliveryStatus.SENT),
    }


def run(*args) -> tuple[str, int]:
    out = io.StringIO()
    try:
        call_command("dlq", *args, stdout=out)
    except CommandError as error:
        return str(error), error.returncode
    return out.getvalue(), 0


def test_list_spans_both_shards_newest_first_and_filters(letters):
    out, code = run("list", "--json")
    assert code == 0
    listed = json.loads(out)
    assert listed["count"] == 3
    assert [row["id"] for row in listed["dead_letters"]] == [
        str(letters[k].id) for k in ("push", "sms_failed", "old_email")
    ]
    assert {row["provider"] for row in listed["dead_letters"]} == {"console", "twilio", "fcm"}

    def ids(*args):
        return {row["id"] for row in json.loads(run("list", "--json", *args)[0])["dead_letters"]}

    assert ids("--channel", "sms") == {str(letters["sms_failed"].id)}
    assert ids("--provider", "fcm") == {str(letters["push"].id)}
    assert ids("--reason", "retries_exhausted") == {str(letters["old_email"].id)}
    assert ids("--status", "failed") == {str(letters["sms_failed"].id)}
    assert ids("--older-than", "1d") == {str(letters["old_email"].id)}
    assert ids("--newer-than", "1h") == {str(letters["sms_failed"].id), str(letters["push"].id)}
    text, _ = run("list", "--channel", "email")
    assert "retries_exhausted" in text and "1 shown of 1 dead letter(s)" in text


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["list", "--channel", "fax"], "--channel"),
        (["list", "--older-than", "yesterday"], "--older-than"),
        (["list", "--newer-than", "5x"], "--newer-than"),
        (["list", "--status", "sent"], "--status"),
        (["list", "--user", "bad user"], "--user"),
        (["list", "--older-than", "2d", "--newer-than", "1d"], "--older-than"),
        (["list", "--limit", "0"], "--limit"),
        (["replay"], "name delivery ids"),
        (["purge", "not-an-id"], "ID"),
    ],
)
def test_a_bad_option_is_exit_2_naming_it(letters, args, option):
    message, code = run(*args)
    assert code == 2
    assert message.startswith(option), message
    assert reload(letters["old_email"]).status == "dead_lettered"


def test_show_and_its_exit_codes(letters):
    out, code = run("show", str(letters["sms_failed"].id), "--json")
    assert code == 0
    shown = json.loads(out)
    assert (shown["reason"], shown["last_error"], shown["address"]) == ("invalid_number", "provider answered 503", "")
    out, _ = run("show", str(letters["old_email"].id))
    assert "x***@example.com" in out and "x@example.com" not in out  # masked
    assert run("show", str(letters["sent"].id))[1] == 1  # not a dead letter
    assert run("show", "nonsense")[1] == 1


def test_replay_by_filter_dry_run_then_for_real_publishes_at_once(letters, run_on_commit, monkeypatch):
    published = []
    monkeypatch.setattr("delivery.services.replay.publish_deliveries", lambda alias, rows: published.extend(rows))
    out, code = run("replay", "--channel", "push", "--dry-run")
    assert (code, out.strip()) == (0, "would replay 1 dead letter(s) (dry run)")
    assert reload(letters["push"]).status == "dead_lettered" and not published
    with run_on_commit():
        out, code = run("replay", "--channel", "push")
    assert code == 0 and "replayed 1 of 1" in out
    replayed = reload(letters["push"])
    assert (replayed.status, replayed.attempts, replayed.reason) == ("queued", 0, "")
    assert [row[0] for row in published] == [letters["push"].id]
    assert reload(letters["sms_failed"]).status == "failed"


def test_replay_by_ids_skips_what_is_not_a_dead_letter(letters, run_on_commit):
    with run_on_commit():
        out, _ = run("replay", str(letters["old_email"].id), str(letters["sent"].id))
    assert "replayed 1 of 1" in out
    assert reload(letters["old_email"]).status == "queued"
    assert reload(letters["sent"]).status == "sent"


def test_purge_marks_drops_content_and_hides_from_list_and_replay(letters, run_on_commit):
    assert run("purge", "--all", "--dry-run")[0].strip() == "would purge 3 dead letter(s) (dry run)"
    out, code = run("purge", "--reason", "retries_exhausted")
    assert (code, out.strip()) == (0, "purged 1 dead letter(s)")
    purged = reload(letters["old_email"])
    assert purged.status == "dead_lettered" and purged.purged_at is not None  # history kept for the status API
    assert (purged.payload, purged.address) == ({}, "")
    assert json.loads(run("list", "--json")[0])["count"] == 2
    with run_on_commit():
        assert "replayed 0 of 0" in run("replay", str(purged.id))[0]
        from delivery.services.replay import requeue

        assert requeue([purged.id]) == 0  # the deliveries admin's requeue refuses it too
    assert reload(purged).status == "dead_lettered"


def test_admin_lists_dead_letters_of_every_shard_with_filters(staff, letters):
    listing = staff.get(ADMIN)
    assert listing.status_code == 200
    assert set(row_ids(listing)) == {str(letters[k].id) for k in ("old_email", "sms_failed", "push")}
    page = page_text(listing)
    for choice in ("twilio", "fcm", "invalid_number", "older than 1 day"):
        assert choice in page
    assert row_ids(staff.get(ADMIN + "?provider=twilio")) == [str(letters["sms_failed"].id)]
    assert row_ids(staff.get(ADMIN + "?reason=unexpected_error")) == [str(letters["push"].id)]
    assert row_ids(staff.get(ADMIN + "?age=gt1d")) == [str(letters["old_email"].id)]
    assert set(row_ids(staff.get(ADMIN + "?channel__exact=push"))) == {str(letters["push"].id)}
    assert row_ids(staff.get(ADMIN + "?status=failed")) == [str(letters["sms_failed"].id)]
    detail = staff.get(f"{ADMIN}{letters['push'].id}/change/")
    assert detail.status_code == 200 and "provider answered 503" in page_text(detail)


def test_admin_replay_and_purge_actions_reach_both_shards(staff, letters):
    selected = [str(letters[k].id) for k in ("old_email", "sms_failed")]
    response = staff.post(ADMIN, {"action": "replay_selected", "_selected_action": selected}, follow=True)
    assert "2 dead letters queued to be sent again" in page_text(response)
    assert {reload(letters[k]).status for k in ("old_email", "sms_failed")} == {"queued"}
    response = staff.post(
        ADMIN, {"action": "purge_selected", "_selected_action": [str(letters["push"].id)]}, follow=True
    )
    assert "1 dead letters purged" in page_text(response)
    assert row_ids(staff.get(ADMIN)) == []
    assert Delivery.objects.using(letters["push"]._state.db).get(id=letters["push"].id).purged_at is not None


def test_filters_are_validated_by_the_service_naming_the_field():
    with pytest.raises(dlq.InvalidFilter) as caught:
        dlq.make_filter(channel="pigeon")
    assert caught.value.field == "channel"
    assert dlq.parse_age("older-than", "90m") == timedelta(minutes=90)
