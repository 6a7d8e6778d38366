"""The trees a benchmark run loads: this one ("current") and, to compare, a baseline commit.

Each target has its own source tree, databases and Redis DB, so two commits can be served side
by side and measured in interleaved rounds. The baseline tree is a temporary git worktree of
the baseline commit; everything about it — migrations, seeding, the web server — runs that
tree's own code, from that tree's directory, with the same Python environment.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED_SCRIPT = Path(__file__).resolve().parent / "seed.py"
PG = "postgres://postgres@127.0.0.1:5432"

BASE_ENV = {
    "NOTIFY_PROFILE": "services",
    "SECRET_KEY": "bench-only-secret-key",
    "CONFIG_CACHE_SECONDS": "30",
    "DB_POOL_MAX": "16",
    "LOG_LEVEL": "WARNING",
    "DJANGO_SETTINGS_MODULE": "config.settings",
}


@dataclass
class Target:
    name: str
    root: Path
    global_db: str
    shard_dbs: list[str]
    redis_db: int
    commit: str = ""
    dirty: bool = False
    key: str = ""
    procs: list[subprocess.Popen] = field(default_factory=list)
    port: int = 0

    @property
    def env(self) -> dict[str, str]:
        """This target's settings (for its own processes)."""
        return {
            **BASE_ENV,
            "DATABASE_URL": f"{PG}/{self.global_db}",
            "SHARD_DATABASE_URLS": ",".join(f"{PG}/{name}" for name in self.shard_dbs),
            "REDIS_URL": f"redis://127.0.0.1:6379/{self.redis_db}",
        }

    def process_env(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        env.pop("PYTHONPATH", None)  # the tree's directory (cwd) must be the only source
        return env

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def _describe(target: Target) -> Target:
    target.commit = _git("rev-parse", "--short", "HEAD", cwd=target.root)
    target.dirty = bool(_git("status", "--porcelain", "--untracked-files=no", cwd=target.root))
    return target


def current_target() -> Target:
    return _describe(Target("current", ROOT, "notify_bench", ["notify_bench_shard_0", "notify_bench_shard_1"], 14))


@contextmanager
def baseline_target(ref: str) -> Iterator[Target]:
    """A temporary worktree of ``ref`` with its own databases (notify_bench_base*) and Redis DB 13."""
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    path = Path(f"/tmp/bench-baseline-{sha[:12]}")
    _remove_worktree(path)
    _git("worktree", "add", "--detach", str(path), sha)
    try:
        shards = ["notify_bench_base_shard_0", "notify_bench_base_shard_1"]
        yield _describe(Target("baseline", path, "notify_bench_base", shards, 13))
    finally:
        _remove_worktree(path)


def _remove_worktree(path: Path) -> None:
    if path.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True)
        shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)


def reset_databases(target: Target) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        for name in [target.global_db, *target.shard_dbs]:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')


def _in_tree(target: Target, *args: str) -> dict:
    """Run bench/seed.py (this tree's copy) with the target's tree as cwd; its JSON answer."""
    out = subprocess.run(
        [sys.executable, str(SEED_SCRIPT), *args], cwd=target.root, env=target.process_env(), capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"seeding the {target.name} tree ({target.commit}) failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare(target: Target, users: int) -> None:
    """Fresh databases, the tree's migrations, the demo catalog, ``users`` recipients, an API key."""
    reset_databases(target)
    seeded = _in_tree(target, "seed", str(users))
    if Path(seeded["tree"]) != target.root:
        raise RuntimeError(f"the {target.name} tree was seeded with the code of {seeded['tree']}, not {target.root}")
    target.key = seeded["key"]


def stored_notifications(target: Target) -> int:
    return _in_tree(target, "count")["stored"]


def start_web(target: Target, processes: int, server: str = "gunicorn", threads: int = 1, worker_class: str = "sync") -> None:
    """Serve the target's tree on a fresh loopback port; return once it answers."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    os.set_inheritable(sock.fileno(), True)
    target.port = sock.getsockname()[1]
    fd = sock.fileno()
    if server == "daphne":
        argvs = [[sys.executable, "-m", "daphne", "-v", "0", "--fd", str(fd), "config.asgi:application"]] * processes
    else:
        argvs = [[sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn", "--bind", f"fd://{fd}",
                  "--workers", str(processes), "--worker-class", worker_class, "--threads", str(threads),
                  "--no-control-socket", "config.wsgi:application"]]  # fmt: skip
        # (no control socket: by default every gunicorn on the machine shares one path)
    env = target.process_env()
    target.procs = [subprocess.Popen(argv, cwd=target.root, env=env, pass_fds=(fd,)) for argv in argvs]
    sock.close()  # the servers hold their own copies
    _wait_until_serving(target)


def _wait_until_serving(target: Target, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        dead = [proc.args for proc in target.procs if proc.poll() is not None]
        if dead:
            raise RuntimeError(f"the {target.name} web server exited: {dead[0]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {target.name} web server did not answer /healthz within {timeout:g} s")
        time.sleep(0.2)


def stop_web(target: Target) -> None:
    for proc in target.procs:
        proc.terminate()
    for proc in target.procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
