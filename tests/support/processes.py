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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connections

ROOT = Path(__file__).resolve().parents[2]
# What selects the services profile; a child in the embedded profile must not inherit them.
SERVICE_VARIABLES = ("NOTIFY_PROFILE", "DATABASE_URL", "SHARD_DATABASE_URLS", "REDIS_URL", "CELERY_BROKER_URL")


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


# Variables that would select the services (or test) profile in a child process.
SERVICE_VARIABLES = ("NOTIFY_PROFILE", "DATABASE_URL", "SHARD_DATABASE_URLS", "REDIS_URL", "CELERY_BROKER_URL")
BANNER = "is running on http://"


def embedded_env(var_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """Environment for a child process on the embedded profile, with private data and port."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(HOST="127.0.0.1", PORT=str(port), VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
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


def start_beat(tmp_path: Path, **env: str) -> ManagedProcess:
    """Celery beat as the Procfile runs it, with its schedule file under ``tmp_path``."""
    argv = [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
            "--schedule", str(tmp_path / f"beat-{uuid.uuid4().hex[:6]}")]  # fmt: skip
    return ManagedProcess(argv, service_env(**env), tmp_path / f"beat-{uuid.uuid4().hex[:6]}.log")


def start_web(tmp_path: Path, *, workers: int = 4, **env: str) -> tuple[ManagedProcess, str]:
    """The services profile's HTTP server exactly as the Procfile runs it: gunicorn with
    config/gunicorn.py (sync workers)."""
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn", "config.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
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


def start_serve(var_dir: Path, log_path: Path, *, port: int | None = None, **env: str) -> tuple[ManagedProcess, str]:
    """`manage.py serve` on the embedded profile; returns once its banner says it listens."""
    port = port or free_port()
    process = ManagedProcess([sys.executable, "manage.py", "serve"], embedded_env(var_dir, port, **env), log_path)
    try:
        process.wait_for_log(BANNER, timeout=120)
    except BaseException:
        process.kill_group()
        raise
    return process, f"http://127.0.0.1:{port}"


class PrivateRedis:
    """A redis-server of the test's own, to stop and start again on the same port."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.process, self.port = start_redis(tmp_path)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.kill_group(signal.SIGTERM)

    def start(self) -> None:
        self.process, _ = start_redis(self.tmp_path, self.port)


@contextmanager
def publishing_to(broker_url: str) -> Iterator[None]:
    """Point this process's Celery publisher at ``broker_url``."""
    import kombu.pools

    from config.celery import app as celery_app

    original = celery_app.conf.broker_url

    def reset():
        # kombu keeps one pool per broker URL process-wide; forget them all, not just ours.
        kombu.pools.reset()
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    celery_app.conf.broker_url = broker_url
    reset()
    try:
        yield
    finally:
        celery_app.conf.broker_url = original
        reset()


def start_procfile_process(tmp_path: Path, name: str, **env: str) -> ManagedProcess:
    """One Procfile process exactly as its line says, the way `make run-services` runs it
    (bash expands ${VAR:-default}; the venv's binaries come first on PATH)."""
    from config.procfile import read_procfile

    (process,) = [p for p in read_procfile() if p.name == name]
    child_env = service_env(**env)
    child_env["PATH"] = f"{Path(sys.executable).parent}:{child_env.get('PATH', '')}"
    argv = ["/bin/bash", "-c", f"exec env {process.command}"]
    return ManagedProcess(argv, child_env, tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.log")


def start_daphne(tmp_path: Path, *, wait: bool = True, **env: str) -> tuple[ManagedProcess, int]:
    """The `ws` Procfile process (Daphne through `manage.py serve`, HTTP and WebSockets) on a
    free port, against this test run's databases and Redis; returns once it listens (or at
    once with ``wait=False``: then call ``wait_for_log(BANNER)``, e.g. to start several
    processes side by side)."""
    port = free_port()
    argv = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = ManagedProcess(argv, service_env(DB_POOL="1", **env), tmp_path / f"daphne-{port}.log")
    if wait:
        try:
            process.wait_for_log(BANNER, timeout=60)
        except BaseException:
            process.kill_group()
            raise
    return process, port
