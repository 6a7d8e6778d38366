"""`make run-services`: every Procfile process under supervisord, a crashed one restarted
while the others go on."""

import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.support.factories import make_key, make_recipient, send_body, user_on
from tests.support.processes import ROOT, ManagedProcess, free_port, service_env, wait_for

pytestmark = [pytest.mark.django_db(databases="__all__", transaction=True), pytest.mark.timeout(240)]


def supervisorctl(conf, *args) -> str:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(conf), *args], capture_output=True, text=True
    ).stdout


def test_the_procfile_runs_under_supervisord_and_a_killed_worker_comes_back(tmp_path, shards, demo_catalog):
    port = free_port()
    env = service_env(
        NOTIFY_PROFILE="services", SECRET_KEY="run-services-test", HOST="127.0.0.1", PORT=str(port),
        WEB_CONCURRENCY="2", VAR_DIR=str(tmp_path / "var"), INAPP_CONCURRENCY="1", SWEEP_INTERVAL_SECONDS="1",
    )  # fmt: skip
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env['PATH']}"
    argv = [sys.executable, "manage.py", "run_services", "--skip-setup", "--only", "web,worker-inapp,worker-maintenance,beat"]
    runner = ManagedProcess(argv, env, tmp_path / "run-services.log")
    conf = tmp_path / "var" / "services" / "supervisord.conf"
    key = make_key()
    user = user_on(shards[0])
    make_recipient(user)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        wait_for(lambda: runner.proc.poll() is None and "RUNNING" in supervisorctl(conf, "status", "web"), timeout=90)

        def sent(notification_id):
            body = httpx.get(f"http://127.0.0.1:{port}/api/v1/notifications/{notification_id}", headers=headers).json()
            return body["status"] == "sent"

        def send():
            response = httpx.post(f"http://127.0.0.1:{port}/api/v1/notifications", headers=headers,
                                  json=send_body(user, channels=["inapp"]), timeout=10)  # fmt: skip
            assert response.status_code == 202, response.text
            return response.json()["id"]

        wait_for(lambda: _answers(port), timeout=60, message="web to answer")
        first = send()
        wait_for(lambda: sent(first), timeout=60, message="sent by the supervised worker")

        old_pid = int(supervisorctl(conf, "pid", "worker-inapp").strip())
        os.killpg(old_pid, signal.SIGKILL)

        def restarted():
            status = supervisorctl(conf, "status", "worker-inapp")
            return "RUNNING" in status and f"pid {old_pid}," not in status

        wait_for(restarted, timeout=60, message="supervisord to start the worker again")
        assert "RUNNING" in supervisorctl(conf, "status", "web")  # the others never stopped
        second = send()
        wait_for(lambda: sent(second), timeout=60, message="sent by the restarted worker")
    finally:
        runner.kill_group(signal.SIGTERM)  # supervisord stops every process it runs
    assert "exited: worker-inapp (terminated by SIGKILL; not expected)" in runner.log()


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_the_supervisord_configuration_covers_every_procfile_process(tmp_path):
    env = service_env(NOTIFY_PROFILE="services", SECRET_KEY="x", VAR_DIR=str(tmp_path / "var"))
    out = subprocess.run(
        [sys.executable, "manage.py", "run_services", "--config-only"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    conf = open(out.stdout.strip()).read()
    from config.procfile import read_procfile

    for process in read_procfile():
        assert f"[program:{process.name}]" in conf
    assert conf.count("autorestart=true") == len(read_procfile())
    assert oct(os.stat(out.stdout.strip()).st_mode & 0o777) == "0o600"  # holds the control password


def test_run_services_refuses_the_embedded_profile(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_PROFILE", "DATABASE_URL", "SHARD_DATABASE_URLS", "REDIS_URL")}
    env["VAR_DIR"] = str(tmp_path / "var")
    out = subprocess.run([sys.executable, "manage.py", "run_services"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "services profile" in out.stderr
