"""Where the processes' time goes: py-spy on running processes, summarized.

py-spy (``pip install py-spy``; not a project dependency) samples a process and its children
from outside, without changing them; ``--nonblocking`` keeps it from pausing them, and
``--gil`` keeps only samples of threads holding the GIL: Python running on a CPU, not a
process waiting for PostgreSQL, Redis or its next task (py-spy's idle detection misses those
waits in C). Its "raw"
output is one line per distinct stack: ``frame;frame;...;leaf count``, each frame
``function (file:line)``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

PROJECT_DIRS = ("config/", "delivery/", "notifications/", "templates_app/", "preferences/", "campaigns/")
_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def available() -> str | None:
    """py-spy's path: on PATH, or beside this Python (a virtualenv not activated)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def record(pid: int, seconds: float, output: Path, rate: int = 50) -> subprocess.Popen:
    """Start sampling ``pid`` and its children for ``seconds``; wait on the returned process."""
    return subprocess.Popen(
        [available() or "py-spy", "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--gil", "--rate", str(rate),
         "--duration", str(max(1, int(seconds))), "--format", "raw", "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _frame_name(frame: str) -> str:
    """``function (path:line)`` → ``function (short path)``: the same function at any line."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    function, path = match.groups()
    for marker in ("site-packages/", "lib/python3.11/", "/work/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{function} ({path})"


def summarize(path: Path, top: int = 40) -> dict:
    """Samples in all; the functions most often on the stack (inclusive) and at its top (self),
    each as a share of all samples of the process group."""
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    if not path.exists():
        return {"samples": 0, "inclusive": [], "self": []}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        # The first frame is "process <pid>:..." with --subprocesses; the thread name may follow.
        frames = [_frame_name(f) for f in stack.split(";") if "(" in f]
        for name in set(frames):
            inclusive[name] += samples
        if frames:
            own[frames[-1]] += samples

    def share(counter: Counter, below: float = 101.0) -> list[list]:
        rows = [[name, round(n / total * 100, 1)] for name, n in counter.most_common()] if total else []
        return [row for row in rows if row[1] < below][:top]

    # Inclusive: from the outermost frame of the project's own code down (the server's or
    # Celery's main loop above it is on nearly every stack and says nothing).
    project = [n for name, n in inclusive.items() if name.rpartition(" (")[2].startswith(PROJECT_DIRS)]
    ceiling = max(project) / total * 100 if project and total else 101.0
    return {"samples": total, "inclusive": share(inclusive, below=ceiling + 0.05), "self": share(own)}
