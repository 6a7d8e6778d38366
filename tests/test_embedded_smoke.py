"""`make run` (the README's command) serves the embedded profile: a send is accepted and sent."""

import httpx
import pytest

from tests.support.processes import BANNER, ManagedProcess, embedded_env, free_port, wait_for

pytestmark = pytest.mark.timeout(300)

DEMO_KEY = "nk_demo0000_localdemokeyforembeddedprofileonly"


def test_make_run_serves_and_delivers(tmp_path):
    port = free_port()
    env = embedded_env(tmp_path / "var", port)
    server = ManagedProcess(["make", "run"], env, tmp_path / "make-run.log")
    try:
        server.wait_for_log(BANNER, timeout=240)
        log = server.log()
        assert f"http://127.0.0.1:{port}/api/v1/" in log
        assert DEMO_KEY in log and "admin / admin" in log

        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {DEMO_KEY}"}
        with httpx.Client(base_url=base, timeout=10) as client:
            sent = client.post(
                "/api/v1/notifications",
                headers=auth,
                json={
                    "user_id": "alice",
                    "type": "order_shipped",
                    "data": {"name": "Alice", "order_id": "A-1"},
                    "idempotency_key": "smoke-1",
                },
            )
            assert sent.status_code == 202, sent.text
            assert sent.json()["outcome"] == "queued"
            status_url = f"/api/v1/notifications/{sent.json()['id']}"

            def delivered():
                body = client.get(status_url, headers=auth).json()
                return body if body["status"] == "sent" else None

            body = wait_for(delivered, timeout=30, interval=0.2, message="the demo send to be sent")
            assert {c["channel"]: c["status"] for c in body["channels"]} == {"email": "sent", "push": "sent", "inapp": "sent"}

            assert client.get("/readyz").json()["status"] == "ready"
            assert client.get("/admin/login/").status_code == 200
            assert client.get("/api/docs/").status_code == 200
            assert client.get("/api/v1/recipients/alice", headers=auth).json()["email"] == "alice@example.com"
        assert (tmp_path / "var" / "shard_0.sqlite3").exists() and (tmp_path / "var" / "shard_1.sqlite3").exists()
    finally:
        server.stop()
