"""Run the processes of the repository's Procfile, as a Procfile runner (honcho, foreman) would.

Each line (read by ``config.procfile``, as ``make run-services`` reads it) becomes one
process, run as ``bash -c 'exec env <command>'`` (the shell expands ``${PORT:-8000}``, env
applies ``NAME=value`` prefixes, and the process keeps the shell's pid), from the repository
root, with the Python environment's ``bin`` first on PATH. Output goes to one log file per
process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Process:
    name: str
    command: str
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0


def parse() -> list[Process]:
    from config.procfile import read_procfile

    return [Process(p.name, p.command) for p in read_procfile()]


def start(processes: list[Process], env: dict[str, str], log_dir: Path, cwd: Path = ROOT) -> None:
    """Start each process with ``env`` (plus its own assignments); the venv's bin first on PATH."""
    log_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)
    base = {**env, "PATH": f"{bin_dir}:{env.get('PATH', os.environ.get('PATH', ''))}"}
    for process in processes:
        process.log = log_dir / f"{process.name}.log"
        with process.log.open("wb") as log:
            process.proc = subprocess.Popen(
                ["bash", "-c", f"exec env {process.command}"],
                cwd=cwd,
                env={**base, **process.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )


def dead(processes: list[Process]) -> list[str]:
    return [f"{p.name} (exit {p.proc.returncode}; log {p.log})" for p in processes if p.proc and p.proc.poll() is not None]


def stop(processes: list[Process], timeout: float = 30.0) -> None:
    """SIGTERM each process we started (Celery: warm shutdown), then SIGKILL what is left."""
    for process in processes:
        if process.proc and process.proc.poll() is None:
            process.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        if not process.proc:
            continue
        try:
            process.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.proc.kill()
            process.proc.wait()


def tail(path: Path | None, lines: int = 30) -> str:
    if not path or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
