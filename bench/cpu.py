"""CPU seconds used by each part of the system during a benchmark phase (from /proc)."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: str) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _children(pid: int) -> set[int]:
    found = {pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            if ppid in found:
                found.add(int(entry.name))
    return found


def snapshot(web_pids: list[int]) -> dict[str, float]:
    """Cumulative CPU seconds per component: web, postgres, redis, loadgen."""
    web = set()
    for pid in web_pids:
        web |= _children(pid)
    totals = {"web": 0.0, "postgres": 0.0, "redis": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry.name}/comm").read_text().strip()
            seconds = _cpu_seconds(entry.name)
        except OSError:
            continue
        if int(entry.name) in web:
            totals["web"] += seconds
        elif comm.startswith("postgres"):
            totals["postgres"] += seconds
        elif comm.startswith("redis-server"):
            totals["redis"] += seconds
    times = os.times()
    totals["loadgen"] = times.user + times.system
    return totals


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: round(after[key] - before[key], 3) for key in before}


# --- per process group, for benchmarks that run the whole Procfile --------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def machine_seconds() -> dict[str, float]:
    """The whole machine's CPU seconds so far (all cores): busy, idle and stolen by the host."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return {
        "busy": (user + nice + system + irq + softirq) / _TICK,
        "idle": (idle + iowait) / _TICK,
        "steal": steal / _TICK,
    }


class GroupAccountant:
    """Cumulative CPU seconds per named group of processes (each root pid and everything it
    started), PostgreSQL split into the backends of ``databases`` and the rest (background
    processes, other databases: other work on a shared server), Redis, this process, and the
    machine's total, so that "the rest of the machine" can be told apart."""

    def __init__(self, groups: dict[str, list[int]], databases: list[str]):
        self.groups = groups
        self.databases = databases
        self.members: dict[int, str] = {}
        self.refresh()

    def refresh(self) -> None:
        """Map every descendant of the groups' roots to its group (call once children exist)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat:
                    parents[int(entry.name)] = stat[0]
        members = {pid: name for name, roots in self.groups.items() for pid in roots}
        changed = True
        while changed:
            changed = False
            for pid, ppid in parents.items():
                if pid not in members and ppid in members:
                    members[pid] = members[ppid]
                    changed = True
        self.members = members

    def _is_ours(self, pid: int) -> bool:
        # A backend's title: "postgres: 15/main: postgres <database> 127.0.0.1(port) idle".
        words = _cmdline(pid).split()
        return any(name in words for name in self.databases)

    def snapshot(self) -> dict[str, float]:
        totals = {name: 0.0 for name in self.groups}
        totals.update({"postgres": 0.0, "postgres_other": 0.0, "redis": 0.0})
        for pid, name in self.members.items():
            stat = _stat(pid)
            if stat:
                totals[name] += stat[1]
        # Servers' processes come and go (a backend per connection): kept per pid, so a delta
        # counts only what each used in between (see group_delta).
        servers: dict[int, tuple[str, float]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in self.members:
                continue
            try:
                comm = Path(f"/proc/{entry.name}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith("postgres"):
                stat = _stat(int(entry.name))
                if stat:
                    servers[int(entry.name)] = ("postgres" if self._is_ours(int(entry.name)) else "postgres_other", stat[1])
            elif comm.startswith("redis-server"):
                stat = _stat(int(entry.name))
                if stat:
                    servers[int(entry.name)] = ("redis", stat[1])
        for name, seconds in servers.values():
            totals[name] += seconds
        totals[SERVER_PIDS] = servers  # type: ignore[assignment]
        times = os.times()
        totals["bench"] = times.user + times.system
        machine = machine_seconds()
        totals["machine_busy"] = machine["busy"]
        totals["machine_steal"] = machine["steal"]
        return totals


SERVER_PIDS = "_server_pids"


def group_delta(before: dict, after: dict) -> dict[str, float]:
    """Seconds used between two GroupAccountant snapshots, with ``rest_of_machine``: busy time
    of processes outside every group (other work on this machine, exited processes)."""
    used = {key: round(after[key] - before[key], 3) for key in before if key != SERVER_PIDS}
    # A server process that exited in between took its seconds with it; one that started
    # in between used all of its own.
    earlier = before.get(SERVER_PIDS, {})
    for name in ("postgres", "postgres_other", "redis"):
        used[name] = round(
            sum(seconds - earlier.get(pid, (name, 0.0))[1] for pid, (group, seconds) in after.get(SERVER_PIDS, {}).items() if group == name),
            3,
        )
    named = sum(value for key, value in used.items() if not key.startswith("machine_"))
    used["rest_of_machine"] = round(max(0.0, used["machine_busy"] - named), 3)
    return used
