"""bench/connections: idle WebSockets held by one Daphne process, and one broadcast to all.

Starts the Procfile's ``ws`` process alone (Daphne, ``manage.py serve``, services profile:
channels_redis pub/sub, presence in Redis) on databases notify_ibench, notify_ibench_shard_0/1
(recreated, ``--connections`` recipients) and Redis DB 12. Client processes then open
``--connections`` authenticated WebSockets (default 10,000; ``--quick``: 2,000), one per user,
and leave them idle. Measured:

* the Daphne process's resident memory (RSS, the process and any children) after a warm-up
  connection, and with every connection held and settled: growth per connection;
* the time to connect them all, and the Daphne CPU while they sit idle (presence heartbeats);
* one broadcast: a ``notification`` frame published once to the ``broadcast`` group every
  connection joins (``group_send``, what the in-app provider does for a user's group), timed
  from the publish to the moment the last client received it.

Prints a table and writes bench/results/connections.json.

    python -m bench.connections [--connections 10000 | --quick] [--client-processes 4]

Targets (issue 8): ≤ 50 KB per connection (seed 001 assumes 10 KB), broadcast to all ≤ 2 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import procfile  # noqa: E402
from bench.api_accept import calibrate  # noqa: E402
from bench.cpu import GroupAccountant, _children, group_delta  # noqa: E402
from bench.delivery_stream import free_port, http_get, procfile_env, wait_for  # noqa: E402
from bench.inapp_latency import DATABASES, ISOLATED, issue_tokens, prepare_ibench  # noqa: E402
from bench.results import write_results  # noqa: E402
from bench.ws_clients import ClientPool, raise_fd_limit  # noqa: E402

TARGETS = {"rss_per_connection_kb": 50.0, "broadcast_seconds": 2.0}


def rss_kb(pid: int) -> int:
    """Resident memory of a process and its descendants, in KB."""
    total = 0
    for member in _children(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def settled_rss(pid: int, seconds: float = 5.0) -> int:
    """RSS once it stops moving (sampled every 0.5 s for ``seconds``): the last value."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(rss_kb(pid))
        time.sleep(0.5)
    return samples[-1]


def broadcast_frame() -> dict:
    from config.sharding import new_id_for_user
    from delivery.providers.inapp import created_at

    nid = new_id_for_user("broadcast")
    return {
        "type": "notification", "id": str(nid), "title": "Maintenance tonight", "body": "The service is down 02:00-02:15 UTC.",
        "action_url": "", "category": "system", "created_at": created_at(nid), "cursor": str(nid),
    }  # fmt: skip


def broadcast(frame: dict) -> float:
    """Publish the frame once to the broadcast group; the wall time just before publishing."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from delivery.providers.inapp import BROADCAST_GROUP

    layer = get_channel_layer()
    async_to_sync(layer.group_send)("warm-up-group", {"type": "noop"})  # the layer's connection is open
    started = time.time()
    # The event notifications.services.broadcasts publishes: marked as a broadcast, so each
    # connection counts it into the unread badge it last sent instead of asking the database.
    async_to_sync(layer.group_send)(BROADCAST_GROUP, {"type": "inbox.notification", "frame": frame, "broadcast": True})
    return started


def table(r: dict) -> str:
    m = r["memory_kb"]
    b = r["broadcast"]
    lines = [
        f"\nbench/connections  commit {r['commit']}{' (dirty)' if r['commit_dirty'] else ''}  {r['when']}  "
        f"calibration {r['calibration_ms'][0]} → {r['calibration_ms'][-1]} ms",
        f"connections held       {r['connect']['connected']:,} of {r['settings']['connections']:,} "
        f"({r['connect']['failed']} failed, {r['closed_early']} closed early) by one Daphne process; "
        f"connected in {r['connect']['connect_seconds']} s",
        f"Daphne RSS             {m['before'] / 1024:.1f} MB after warm-up → {m['held'] / 1024:.1f} MB held: "
        f"{r['rss_per_connection_kb']:.1f} KB per connection",
        f"idle Daphne CPU        {r['idle_cpu_percent']:.1f} % of one core over {r['settings']['idle_seconds']:g} s "
        f"(presence heartbeats every {r['presence_heartbeat_seconds']:g} s per connection)",
        f"broadcast              one group_send → {b['received']:,} of {r['connect']['connected']:,} clients in "
        f"{b['seconds_to_last']} s (p50 {b['p50_s']} s, first {b['seconds_to_first']} s)",
        "targets                "
        + f"≤ {TARGETS['rss_per_connection_kb']:g} KB/connection: {'met' if r['rss_per_connection_kb'] <= TARGETS['rss_per_connection_kb'] else 'NOT met'}, "
        + f"broadcast ≤ {TARGETS['broadcast_seconds']:g} s: {'met' if b['seconds_to_last'] is not None and b['seconds_to_last'] <= TARGETS['broadcast_seconds'] and b['received'] == r['connect']['connected'] else 'NOT met'}",
    ]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000, help="idle authenticated WebSockets")
    parser.add_argument("--quick", action="store_true", help="2,000 connections")
    parser.add_argument("--client-processes", type=int, default=4, help="processes holding the WebSockets")
    parser.add_argument("--in-flight", type=int, default=50, help="handshakes in flight per client process")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="idle hold measured for CPU")
    parser.add_argument("--broadcast-timeout", type=float, default=60.0)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="extra env for Daphne")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "connections.json"))
    args = parser.parse_args()
    if args.quick:
        args.connections = 2_000
    extra = {**ISOLATED, "LOG_LEVEL": "WARNING", **dict(item.split("=", 1) for item in args.set)}
    raise_fd_limit()  # inherited by Daphne and the client processes

    target, calibration = prepare_ibench(args.connections)
    from django.conf import settings

    creds = issue_tokens([f"bench-user-{i}" for i in range(args.connections)])
    work_dir = Path(tempfile.mkdtemp(prefix="bench-connections-"))
    (work_dir / "var").mkdir()
    ws_port = free_port()
    env = procfile_env(target, free_port(), ws_port, work_dir / "var", extra)
    processes = [p for p in procfile.parse() if p.name == "ws"]
    url = f"ws://127.0.0.1:{ws_port}/ws/notifications/"
    pool = ClientPool(url, creds, processes=args.client_processes, in_flight=args.in_flight)
    results: dict = {}
    with ExitStack() as stack:
        stack.callback(procfile.stop, processes)
        stack.callback(pool.terminate)
        procfile.start(processes, env, work_dir / "logs")
        daphne = processes[0]
        wait_for(
            "daphne (ws) to answer /healthz", lambda: http_get(ws_port, "/healthz")[0] == 200, processes, timeout=180
        )
        # One connection first, so that what every server has loaded by its first socket
        # (imports, the layer's Redis connections, the thread pool) is not counted per connection.
        warm = ClientPool(url, creds[:1])
        warm.start()
        warm.wait_connected()
        warm.stop()
        before = settled_rss(daphne.pid)
        print(f"Daphne RSS after warm-up: {before / 1024:.1f} MB; connecting {args.connections:,} WebSockets "
              f"from {args.client_processes} processes...", flush=True)  # fmt: skip
        pool.start()
        connect = pool.wait_connected(timeout=900)
        print(f"  {connect}", flush=True)
        held = settled_rss(daphne.pid)
        accountant = GroupAccountant({"ws": [daphne.pid], "clients": pool.pids}, list(DATABASES))
        idle_before = accountant.snapshot()
        time.sleep(args.idle_seconds)
        idle = group_delta(idle_before, accountant.snapshot())
        print(f"broadcasting one frame to {connect['connected']:,} connections...", flush=True)
        frame = broadcast_frame()
        cpu_before = accountant.snapshot()
        started = broadcast(frame)
        deadline = time.monotonic() + args.broadcast_timeout
        while pool.frames_so_far(frame["id"]) < connect["connected"] and time.monotonic() < deadline:
            time.sleep(0.05)
        waited = time.time() - started
        cpu_broadcast = group_delta(cpu_before, accountant.snapshot())
        frames = [f for f in pool.stop() if f[1] == frame["id"]]
        held_after = rss_kb(daphne.pid)
        calibration.append(calibrate())
        procfile.stop(processes)
    delays = sorted(received - started for _, _, received in frames)
    results = {
        "benchmark": "connections",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": target.commit,
        "commit_dirty": target.dirty,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {**vars(args), "process": processes[0].command, "env_overrides": extra},
        "presence_heartbeat_seconds": settings.PRESENCE_HEARTBEAT_SECONDS,
        "calibration_ms": calibration,
        "connect": connect,
        "closed_early": pool.closed_early,
        "closed_reasons": [r for report in pool.end_reports for r in report["closed_reasons"]][:5],
        "memory_kb": {"before": before, "held": held, "after_broadcast": held_after},
        "rss_per_connection_kb": round((held - before) / max(1, connect["connected"]), 2),
        "idle_cpu_seconds": idle,
        "idle_cpu_percent": round(100 * idle["ws"] / args.idle_seconds, 1),
        "broadcast": {
            "received": len(frames),
            "waited_seconds": round(waited, 3),
            "seconds_to_first": round(delays[0], 3) if delays else None,
            "p50_s": round(delays[len(delays) // 2], 3) if delays else None,
            "seconds_to_last": round(delays[-1], 3) if delays else None,
            "cpu_seconds": cpu_broadcast,
        },
        "targets": TARGETS,
        "logs": str(work_dir / "logs"),
    }
    output = write_results(args.output, results)
    print(table(results))
    print(f"\nwrote {output}; Daphne's log in {work_dir / 'logs'}")


if __name__ == "__main__":
    main()
