"""`manage.py serve` (what `make run` runs), as a real process on the embedded profile: it seeds
only the first time, tells the truth about the demo credentials, refuses a taken port before
touching anything, and logs one line per request."""

import socket
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ROOT, embedded_env, start_serve, wait_for

pytestmark = pytest.mark.timeout(300)

DEMO_KEY = "nk_demo0000_localdemokeyforembeddedprofileonly"


def _sql(var_dir: Path, statement: str, *params) -> list[tuple]:
    # What an operator would do in the admin, done straight in the embedded global database.
    with closing(sqlite3.connect(var_dir / "global.sqlite3")) as db, db:
        return db.execute(statement, params).fetchall()


def _order_shipped_email_body(var_dir: Path) -> str:
    rows = _sql(var_dir, "SELECT body FROM templates_app_template WHERE type_key='order_shipped' AND channel='email'")
    return rows[0][0]


def _serve_once(var_dir: Path, log: Path) -> str:
    """Start serve, return everything it printed up to and including its banner, stop it."""
    server, _ = start_serve(var_dir, log)
    try:
        return server.log()
    finally:
        server.stop()


def test_first_start_seeds_later_starts_keep_edits_and_make_reset_starts_over(tmp_path):
    var_dir = tmp_path / "var"
    first = _serve_once(var_dir, tmp_path / "first.log")
    assert "First start: creating the demo data" in first
    assert "admin / admin" in first and DEMO_KEY in first
    seeded_body = _order_shipped_email_body(var_dir)

    # What an operator does in the admin: edit a template, change the admin password, revoke the key.
    _sql(
        var_dir,
        "UPDATE templates_app_template SET body='Our own words' WHERE type_key='order_shipped' AND channel='email'",
    )
    _sql(var_dir, "UPDATE auth_user SET password='!unusable' WHERE username='admin'")
    _sql(var_dir, "UPDATE notifications_apiclient SET is_active=0 WHERE name='demo'")

    second = _serve_once(var_dir, tmp_path / "second.log")
    assert "First start" not in second
    assert _order_shipped_email_body(var_dir) == "Our own words"
    # The banner no longer offers credentials that do not work, and says how to make real ones.
    assert "admin / admin" not in second and DEMO_KEY not in second
    assert "python manage.py createsuperuser" in second
    assert "python manage.py create_api_client NAME" in second

    subprocess.run(["make", "reset"], cwd=ROOT, env=embedded_env(var_dir, 0), check=True, capture_output=True)
    assert not (var_dir / "global.sqlite3").exists() and not list(var_dir.glob("shard_*.sqlite3"))
    assert (var_dir / "secret_key").exists()

    third = _serve_once(var_dir, tmp_path / "third.log")
    assert "First start: creating the demo data" in third
    assert "admin / admin" in third and DEMO_KEY in third
    assert _order_shipped_email_body(var_dir) == seeded_body


def test_a_taken_port_is_refused_before_anything_is_prepared(tmp_path):
    var_dir = tmp_path / "var"
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "serve"],
            cwd=ROOT, env=embedded_env(var_dir, port), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode != 0
    assert f"port {port} is in use" in result.stderr
    assert "set PORT=" in result.stderr
    assert not (var_dir / "global.sqlite3").exists()  # nothing migrated or seeded
    assert "is running" not in result.stdout


def test_one_access_line_per_request_and_no_periodic_chatter(tmp_path):
    server, base = start_serve(tmp_path / "var", tmp_path / "serve.log")
    try:
        auth = {"Authorization": f"Bearer {DEMO_KEY}"}
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/healthz", params={"token": "s3cret"}, headers=auth).status_code == 200
            sent = client.post(
                "/api/v1/notifications",
                headers=auth,
                json={"user_id": "bob", "type": "order_shipped", "data": {"name": "Bob", "order_id": "B-1"},
                      "idempotency_key": "access-log-1"},
            )  # fmt: skip
            assert sent.status_code == 202
            status_path = f"/api/v1/notifications/{sent.json()['id']}"
            # Wait on the worker (and so on beat's sweep having run meanwhile).
            wait_for(
                lambda: client.get(status_path, headers=auth).json()["status"] == "sent",
                timeout=30, interval=0.2, message="the send to be sent",
            )  # fmt: skip
        wait_for(lambda: f"GET {status_path} 200 " in server.log(), message="the status request's access line")

        log = server.log()
        after_banner = log[log.index("Try it:") :]
        healthz = [line for line in after_banner.splitlines() if "/healthz" in line]
        assert len(healthz) == 1 and healthz[0].endswith("ms") and "GET /healthz 200 " in healthz[0]
        assert len([line for line in after_banner.splitlines() if "POST /api/v1/notifications 202 " in line]) == 1
        assert "s3cret" not in log
        # The key is in the banner (indented lines), never in a log line.
        assert all(line.startswith("  ") for line in log.splitlines() if DEMO_KEY in line)
        assert "Sending due task" not in log
    finally:
        server.stop()
