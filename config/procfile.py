"""The Procfile, read as data: what `make run-services`, the fault tests and the benchmarks start."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"
_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


@dataclass(frozen=True)
class Process:
    name: str
    command: str  # a shell command line (may set variables and use ${VAR:-default})


def read_procfile(path: Path = PROCFILE) -> list[Process]:
    processes = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"{path.name}: cannot read {line!r} (expected 'name: command')")
        processes.append(Process(match.group(1), match.group(2)))
    return processes
