"""Real processes for tests: Celery workers, the gunicorn web server, a private redis-server.

They run against the very test databases pytest-django created, so what a worker or server
writes is what the test then reads.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.db import connections

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], *, timeout: float = 20.0, interval: float = 0.05, message: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


def _database_url(alias: str) -> str:
    conf = connections[alias].settings_dict
    user = conf.get("USER") or "postgres"
    host = conf.get("HOST") or "127.0.0.1"
    port = conf.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{conf['NAME']}"


def service_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that uses this test run's databases and Redis."""
    env = dict(os.environ)
    env.update(
        NOTIFY_PROFILE="test",
        DATABASE_URL=_database_url("default"),
        SHARD_DATABASE_URLS=",".join(_database_url(alias) for alias in settings.SHARD_ALIASES),
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CONFIG_CACHE_SECONDS="0",
        DB_POOL_MAX="4",
        PYTHONUNBUFFERED="1",
        CELERY_TASK_LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


class ManagedProcess:
    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        def seen():
            if self.proc.poll() is not None:
                raise AssertionError(f"process exited ({self.proc.returncode}):\n{self.log()[-4000:]}")
            return text in self.log()

        wait_for(seen, timeout=timeout, message=f"{text!r} in {self.log_path.name}")

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill_group(signal.SIGTERM)
        else:
            self._log.close()


def start_worker(tmp_path: Path, queues: list[str], *, concurrency: int = 1, **env: str) -> ManagedProcess:
    name = f"test-{uuid.uuid4().hex[:6]}"
    argv = [
        sys.executable, "-m", "celery", "-A", "config", "worker",
        "--queues", ",".join(queues),
        "--concurrency", str(concurrency),
        "--pool", "prefork",
        "--prefetch-multiplier", "1",
        "--hostname", f"{name}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "INFO",
    ]  # fmt: skip
    process = ManagedProcess(argv, service_env(**env), tmp_path / f"{name}.log")
    try:
        process.wait_for_log(" ready.", timeout=60)
    except BaseException:
        process.kill_group()  # never leave a worker consuming the next test's queues
        raise
    return process


def start_web(tmp_path: Path, *, workers: int = 2, threads: int = 8, **env: str) -> tuple[ManagedProcess, str]:
    """The services profile's HTTP server, as the Procfile runs it (gunicorn, threads)."""
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn", "config.wsgi:application",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads),
    ]  # fmt: skip
    process = ManagedProcess(argv, service_env(**env), tmp_path / f"web-{port}.log")
    base = f"http://127.0.0.1:{port}"

    def healthy():
        if process.proc.poll() is not None:
            raise AssertionError(f"web server exited:\n{process.log()[-4000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    try:
        wait_for(healthy, timeout=60, message="the web server to listen")
    except BaseException:
        process.kill_group()
        raise
    return process, base


def start_redis(tmp_path: Path, port: int | None = None) -> tuple[ManagedProcess, int]:
    port = port or free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = ManagedProcess(argv, dict(os.environ), tmp_path / f"redis-{port}.log")
    process.wait_for_log("Ready to accept connections", timeout=20)
    return process, port
