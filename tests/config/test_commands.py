"""Operator commands."""

import subprocess
import sys

import httpx
import pytest
from django.core.management import CommandError, call_command, get_commands

from notifications.models import ApiClient
from notifications.services.api_keys import authenticate_key, hash_key
from tests.support.processes import ROOT, ManagedProcess, embedded_env, free_port, wait_for

pytestmark = pytest.mark.django_db(databases="__all__")


def test_create_api_client_prints_the_key_once_and_stores_its_hash(capsys, demo_catalog):
    call_command("create_api_client", "payments", "--types", "payment_confirmed,order_shipped", "--critical")
    key = capsys.readouterr().out.strip()
    client = ApiClient.objects.get(name="payments")
    assert key.startswith("nk_") and key not in str(client.__dict__)
    assert client.key_hash == hash_key(key)
    assert client.allowed_types == ["order_shipped", "payment_confirmed"]
    assert client.may_send_critical is True
    assert authenticate_key(key).name == "payments"


def test_create_api_client_defaults_and_errors(capsys, demo_catalog):
    call_command("create_api_client", "everything")
    client = ApiClient.objects.get(name="everything")
    assert (client.allowed_types, client.may_send_critical) == (["*"], False)
    assert sorted(client.scopes) == ["recipients", "send", "status"]  # tokens only on purpose
    with pytest.raises(CommandError, match="unknown notification type"):
        call_command("create_api_client", "x", "--types", "nope")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_api_client", "everything")
    with pytest.raises(CommandError, match="unknown scope"):
        call_command("create_api_client", "y", "--scopes", "root")


def test_worker_command_refuses_unknown_pools():
    with pytest.raises(CommandError, match="unknown worker pool"):
        call_command("worker", "fax")


@pytest.mark.parametrize(
    "pool, queues",
    [
        ("email", "email.critical,email.high,email.normal,email.low"),
        ("sms", "sms.critical,sms.high,sms.normal,sms.low"),
        ("core", "core"),
        ("maintenance", "maintenance"),
    ],
)
def test_worker_command_consumes_its_pools_queues_critical_first(pool, queues, monkeypatch):
    import os

    started = []
    monkeypatch.setattr(os, "execv", lambda path, argv: started.append(argv))
    call_command("worker", pool, "--", "--concurrency", "3")
    (argv,) = started
    assert argv[argv.index("--queues") + 1] == queues
    assert argv[-2:] == ["--concurrency", "3"]


def test_worker_command_refuses_the_embedded_profiles_in_memory_broker(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "worker", "email"],
        cwd=ROOT, env=embedded_env(tmp_path / "var", free_port()), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "would never receive anything" in result.stderr
    assert "make run" in result.stderr and "DATABASE_URL" in result.stderr


def test_runserver_is_the_projects_own_command():
    # Daphne ships a runserver too; whichever app comes first in INSTALLED_APPS wins.
    assert get_commands()["runserver"] == "config"


@pytest.mark.timeout(180)
def test_runserver_serves_but_warns_that_nothing_is_delivered_in_the_embedded_profile(tmp_path):
    port = free_port()
    env = embedded_env(tmp_path / "var", port)
    server = ManagedProcess(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], env, tmp_path / "runserver.log"
    )
    try:

        def answers():
            if server.proc.poll() is not None:
                raise AssertionError(f"runserver exited:\n{server.log()}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answers, timeout=60, message="runserver to answer")
        assert "nothing will be delivered" in server.log()
        assert "make run" in server.log()
    finally:
        server.stop()


def test_procfile_exec_runs_one_procfile_line_by_name(tmp_path):
    """The systemd units in docs/deploy.md run Procfile lines through this script."""
    missing = subprocess.run([str(ROOT / "scripts" / "procfile-exec"), "nope"], capture_output=True, text=True)
    assert missing.returncode == 64 and "no Procfile process named nope" in missing.stderr
    from config.procfile import read_procfile

    names = [p.name for p in read_procfile()]
    assert names == ["web", "ws", "worker-email", "worker-sms", "worker-push", "worker-inapp", "worker-core",
                     "worker-maintenance", "beat"]  # fmt: skip
