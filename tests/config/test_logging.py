"""A quiet terminal: beat's per-run line only at DEBUG; one access line per HTTP request, in
`serve` (Daphne) and in the Procfile's gunicorn web process, without query strings or headers."""

import logging

import httpx
import pytest

from config.log import access_line, daphne_access_log
from tests.support.processes import free_port, start_procfile_process, wait_for

BEAT_TICK = ("Scheduler: Sending due task %s (%s)", "sweep-deliveries", "delivery.sweep")


def test_beat_sending_a_periodic_task_is_logged_at_debug_only(caplog):
    beat = logging.getLogger("celery.beat")
    with caplog.at_level(logging.INFO):
        beat.info(*BEAT_TICK)
        beat.info("beat: Starting...")
    assert [r.getMessage() for r in caplog.records] == ["beat: Starting..."]

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="celery.beat"):
        beat.info(*BEAT_TICK)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("DEBUG", "Scheduler: Sending due task sweep-deliveries (delivery.sweep)")
    ]


def test_access_line_drops_the_query_string():
    assert (
        access_line("GET", "/api/v1/notifications/abc?token=s3cret", 200, 0.0123)
        == "GET /api/v1/notifications/abc 200 12ms"
    )


def test_daphne_access_log_writes_one_line_per_completed_request(caplog):
    details = {"method": "POST", "path": "/api/v1/notifications?x=1", "status": 202, "time_taken": 0.05,
               "client": "127.0.0.1:5000", "size": 10}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="config.access"):
        daphne_access_log("http", "complete", details)
        daphne_access_log("websocket", "connecting", {"path": "/ws/", "client": "127.0.0.1:5000"})
    assert [r.getMessage() for r in caplog.records] == ["POST /api/v1/notifications 202 50ms"]


@pytest.mark.timeout(120)
def test_procfile_web_process_logs_one_access_line_per_request(tmp_path):
    port = free_port()
    web = start_procfile_process(tmp_path, "web", HOST="127.0.0.1", PORT=str(port), WEB_CONCURRENCY="1")
    try:

        def answered():
            if web.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{web.log()}")
            try:
                return httpx.get(
                    f"http://127.0.0.1:{port}/healthz?token=s3cret",
                    headers={"Authorization": "Bearer nk_abcdefgh_secretkeymaterial"},
                    timeout=2,
                )
            except httpx.TransportError:
                return None

        assert wait_for(answered, timeout=60, message="gunicorn to answer").status_code == 200
        wait_for(lambda: "GET /healthz 200 " in web.log(), timeout=10, message="the access line")
        lines = [line for line in web.log().splitlines() if "/healthz" in line]
        assert len(lines) == 1, lines
        assert lines[0].startswith("GET /healthz 200 ") and lines[0].endswith("ms")
        assert "s3cret" not in web.log() and "secretkeymaterial" not in web.log()
    finally:
        web.stop()
