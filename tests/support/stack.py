"""The services profile as real processes, on a PostgreSQL cluster and a Redis of its own.

For fault tests: the stack's PostgreSQL and Redis can be stopped and started again on the
same port, and each Procfile process killed and started again, without touching the shared
servers other test runs use. What the processes write is read back with psycopg straight
from the private databases.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import requests

from config.procfile import read_procfile
from tests.support.processes import (
    ROOT,
    ManagedProcess,
    PrivateRedis,
    free_port,
    service_env,
    start_procfile_process,
    wait_for,
)

GLOBAL_DB = "notify"
SHARD_DBS = ("notify_shard_0", "notify_shard_1")


def _postgres_bin(name: str) -> str:
    """A PostgreSQL server binary: from PATH, else the newest Debian/Ubuntu install."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError(f"{name} (a PostgreSQL server binary) is needed for the fault tests and was not found")
    return candidates[-1]


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a free port, stopped and started like a real outage.

    PostgreSQL refuses to run as root, so under root the cluster belongs to ``postgres``.
    fsync is off: the outages are clean shutdowns, and a test has no data to protect.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="notify-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self.dir.chmod(0o700)
        self._run(_postgres_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self.start()

    def _run(self, *argv: str, timeout: float = 120) -> None:
        result = subprocess.run([*self._as_postgres, *argv], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str) -> psycopg.Connection:
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        """A fast shutdown: every session is cut at once, as a crash or a failover would."""
        self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def log(self) -> str:
        try:
            return (self.dir / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self._as_postgres, _postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate",
                            "-w", "-t", "30", "stop"], capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)


# What the fault test runs of the Procfile: everything but the WebSocket server and the core
# worker (fan-out of bulk sends and campaigns; single sends never use it).
STACK_PROCESSES = tuple(p.name for p in read_procfile() if p.name not in ("ws", "worker-core"))


class ServiceStack:
    """The Procfile's processes on a private PostgreSQL and Redis, with an API key and the
    demo catalog. Use as a context manager: everything it started is stopped and removed."""

    def __init__(self, tmp_path: Path, *, names: Iterable[str] = STACK_PROCESSES, **env: str) -> None:
        self.tmp_path = tmp_path
        self.names = tuple(names)
        self.extra_env = env
        self.processes: dict[str, ManagedProcess] = {}
        self.retired: list[ManagedProcess] = []  # killed on purpose, then replaced
        self.pg: PrivatePostgres | None = None
        self.redis: PrivateRedis | None = None
        self.base_url = ""
        self.api_key = ""

    def __enter__(self) -> ServiceStack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- setup ------------------------------------------------------------------------------

    def _start(self) -> None:
        self.pg = PrivatePostgres()
        self.redis = PrivateRedis(self.tmp_path)
        port = free_port()
        var_dir = self.tmp_path / "var"
        var_dir.mkdir(exist_ok=True)
        self.env = {
            "NOTIFY_PROFILE": "services",
            "DATABASE_URL": self.pg.url(GLOBAL_DB),
            "SHARD_DATABASE_URLS": ",".join(self.pg.url(name) for name in SHARD_DBS),
            "REDIS_URL": self.redis.url,
            "CELERY_BROKER_URL": self.redis.url,
            "SECRET_KEY": secrets.token_urlsafe(40),
            "VAR_DIR": str(var_dir),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "QUEUE_PREFIX": "",
            **self.extra_env,
        }
        self.manage("create_databases")
        self.manage("migrate", "--verbosity", "0")
        self.manage("seed_demo", "--catalog-only")
        self.api_key = self.manage("create_api_client", "fault-test", "--critical").strip().splitlines()[-1]
        self.base_url = f"http://127.0.0.1:{port}"
        for name in self.names:
            self.start(name)
        for name in self.names:
            if name.startswith("worker-"):
                self.processes[name].wait_for_log(" ready.", timeout=120)
        wait_for(self.ready, timeout=120, interval=0.2, message="the web server to answer /readyz ready")

    def manage(self, *argv: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *argv], cwd=ROOT, env=service_env(**self.env),
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {argv[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result.stdout

    # --- processes ----------------------------------------------------------------------------

    def start(self, name: str) -> ManagedProcess:
        self.processes[name] = start_procfile_process(self.tmp_path, name, **self.env)
        return self.processes[name]

    def kill(self, name: str) -> None:
        """SIGKILL the process and everything it started (a prefork worker's children too)."""
        process = self.processes.pop(name)
        process.kill_group(signal.SIGKILL)
        self.retired.append(process)

    def dead(self) -> dict[str, int]:
        """Processes that exited, with their exit status."""
        return {name: p.proc.returncode for name, p in self.processes.items() if p.proc.poll() is not None}

    def logs(self, name: str) -> str:
        earlier = "".join(p.log() for p in self.retired if p.log_path.name.startswith(f"{name}-"))
        return earlier + self.processes[name].log()

    # --- web --------------------------------------------------------------------------------

    def ready(self) -> bool:
        if self.dead():
            raise AssertionError(f"processes exited during start-up: {self.dead()}\n{self._tails()}")
        try:
            response = requests.get(f"{self.base_url}/readyz", timeout=2)
        except requests.RequestException:
            return False
        return response.status_code == 200 and response.json().get("status") == "ready"

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.api_key}"
        return session

    # --- what the processes wrote -------------------------------------------------------------

    def shard_rows(self, sql: str, params: Iterable = ()) -> list[tuple]:
        with self.shard_connections() as connections:
            return [row for connection in connections for row in connection.execute(sql, list(params)).fetchall()]

    @contextmanager
    def shard_connections(self) -> Iterator[list[psycopg.Connection]]:
        """A connection to each shard (autocommit), for polling without reconnecting each time."""
        with ExitStack() as stack:
            yield [stack.enter_context(self.pg.connect(name)) for name in SHARD_DBS]

    def global_rows(self, sql: str, params: Iterable = ()) -> list[tuple]:
        with self.pg.connect(GLOBAL_DB) as connection:
            return connection.execute(sql, list(params)).fetchall()

    # --- teardown -----------------------------------------------------------------------------

    def _tails(self, size: int = 2000) -> str:
        return "\n".join(f"--- {name} ---\n{p.log()[-size:]}" for name, p in self.processes.items())

    def close(self) -> None:
        for process in self.processes.values():
            try:
                process.stop()
            except Exception:
                process.kill_group(signal.SIGKILL)
        if self.redis is not None:
            self.redis.process.stop()
        if self.pg is not None:
            self.pg.destroy()
