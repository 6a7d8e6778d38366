"""Tables of bench/delivery_stream results: one column per offered rate."""

from __future__ import annotations

from bench.report import _render

# The product owner's target, on 2 cores with console providers.
TARGET_RATE = 200.0
TARGET_P99_MS = 1000.0
CHANNELS = ("email", "push", "inapp")
COMPONENTS = (
    ("web", "web (gunicorn)"),
    ("ws", "ws (daphne)"),
    ("worker-email", "worker-email"),
    ("worker-push", "worker-push"),
    ("worker-inapp", "worker-inapp"),
    ("worker-sms", "worker-sms"),
    ("worker-core", "worker-core"),
    ("worker-maintenance", "worker-maintenance"),
    ("beat", "beat"),
    ("postgres", "PostgreSQL (this bench's databases)"),
    ("postgres_other", "PostgreSQL (background, other databases)"),
    ("redis", "Redis"),
    ("bench", "load generator + sampler"),
    ("rest_of_machine", "rest of the machine (other work)"),
    ("machine_busy", "machine busy, all processes (of 200%)"),
    ("machine_steal", "stolen by the hypervisor"),
)


def _ms(summary: dict, key: str = "p50") -> str:
    value = summary.get(key) if summary else None
    return "–" if value is None else f"{value:,.0f}"


def _pair(summary: dict | None) -> str:
    return f"{_ms(summary or {}, 'p50')} / {_ms(summary or {}, 'p99')}"


def meets_target(step: dict) -> bool:
    overall = step["latency_accept_to_sent_ms"].get("all", {})
    http = step["http"]
    return (
        http["ok"] == http["requests"]  # every request offered on schedule was accepted
        and http["requests_per_s"] >= 0.95 * step["rate"]
        and step["backlog"]["flat"]
        and overall.get("p99") is not None
        and overall["p99"] <= TARGET_P99_MS
        and step["drained"]
    )


def step_line(step: dict) -> str:
    overall = step["latency_accept_to_sent_ms"].get("all", {})
    backlog = step["backlog"]
    drain = "not drained" if not step["drained"] else f"drained {step['drain_s']:g} s after"
    return (
        f"  accepted {step['http']['requests_per_s']:g}/s, sent {step['sent_per_s_during_stream']:g} deliveries/s; "
        f"accept→sent p50 {_ms(overall)} ms p99 {_ms(overall, 'p99')} ms; backlog {backlog['start']}→{backlog['end']} "
        f"(max {backlog['max']}, slope {backlog['slope_per_s']:+g}/s); {drain}"
    )


def table(results: dict) -> str:
    steps = results["steps"]
    header = ["measure", *(f"{s['rate']:g} sends/s" for s in steps)]

    def row(label: str, cell) -> tuple[str, ...]:
        return (label, *(cell(s) for s in steps))

    rows = [
        row("Offered: sends/s (deliveries/s)", lambda s: f"{s['rate']:g} ({3 * s['rate']:g})"),
        row("Accepted sends/s (HTTP p50 / p99 ms, from schedule)",
            lambda s: f"{s['http']['requests_per_s']:g} ({s['http']['p50_ms']:.0f} / {s['http']['p99_ms']:.0f})"),
        row("Stream: offered for / last request answered after, s",
            lambda s: f"{s['duration']:g} / {s['ended_wall'] - s['started_wall']:.1f}"),
        row("Deliveries sent/s during the stream", lambda s: f"{s['sent_per_s_during_stream']:g}"),
        row("Accept→sent ms p50 / p99, all", lambda s: _pair(s["latency_accept_to_sent_ms"].get("all"))),
        *(row(f"  {channel}", lambda s, c=channel: _pair(s["latency_accept_to_sent_ms"].get(c))) for channel in CHANNELS),
        row("Scheduled→sent ms p50 / p99 (HTTP included)", lambda s: _pair(s["latency_scheduled_to_sent_ms"])),
        row("Backlog (queued+sending) start / end / max",
            lambda s: f"{s['backlog']['start']} / {s['backlog']['end']} / {s['backlog']['max']}"),
        row("Backlog slope /s (growth over the step)",
            lambda s: f"{s['backlog']['slope_per_s']:+g} ({s['backlog']['growth_over_step']:+d})"
            + (" flat" if s["backlog"]["flat"] else " GROWING")),
        row("Doorbell messages waiting, max", lambda s: f"{max((p[2] for p in s['backlog']['series']), default=0)}"),
        row("Drain time after the stream, s", lambda s: f"{s['drain_s']:g}" if s["drained"] else "not drained"),
        row("Provider batches: count, mean size (email / push / inapp)",
            lambda s: " / ".join(f"{b['batches']}×{b['mean_size']:g}" for c in CHANNELS if (b := s["batches"].get(c)))),
        row("Tasks run (email / push / inapp / maintenance)",
            lambda s: " / ".join(str(s.get("tasks_run", {}).get(pool, "–")) for pool in (*CHANNELS, "maintenance"))),
        row("Republished by the sweep", lambda s: f"{s['republished_by_sweep']}"),
        row("Deliveries: sent / unfinished", lambda s: f"{s['statuses'].get('sent', 0)} / {s['unfinished']}"),
        row(f"Target ({TARGET_RATE:g}/s flat, p99 ≤ {TARGET_P99_MS / 1000:g} s)",
            lambda s: ("MET" if meets_target(s) else "NOT MET") if s["rate"] >= TARGET_RATE else ("ok" if meets_target(s) else "no")),
        ("CPU: % of a core in stream | ms per delivery",),
        *(row(f"  {label}", lambda s, k=key: f"{s['cpu_percent_of_one_core_stream'].get(k, 0):g}% | "
              f"{s['cpu_ms_per_delivery'].get(k, 0):.3f}") for key, label in COMPONENTS),
        row("  all worker pools", lambda s: f"{_workers(s['cpu_percent_of_one_core_stream']):.1f}% | "
            f"{_workers(s['cpu_ms_per_delivery']):.3f}"),
    ]  # fmt: skip
    out = [_render(header, rows), "", _render(["same run", "value"], _context_rows(results))]
    return "\n".join(out)


def _workers(values: dict) -> float:
    return sum(v for k, v in values.items() if k.startswith("worker-"))


def _context_rows(results: dict) -> list[tuple[str, str]]:
    rows = []
    if accept := results.get("accept_max"):
        rows.append(("Single-send max, web alone (32 connections, no workers)",
                     f"{accept['requests_per_s']:g} req/s (p50 {accept['p50_ms']:.0f} ms); stored {accept['stored']} / {accept['ok']}"))  # fmt: skip
    if limits := results.get("limits"):
        redis, pg = limits["redis"], limits["postgres"]
        rows += [
            ("Redis SET ops/s: 50 clients / pipelined ×16 (limit)", f"{redis['set_ops_per_s']:.0f} / {redis['set_ops_per_s_pipelined_16']:.0f}"),
            ("PostgreSQL COPY, delivery rows/s (limit)", f"{pg['copy_rows_per_s']}"),
            ("PostgreSQL 1-row INSERT txn/s, pgbench 16 clients (limit)", f"{pg['insert_txn_per_s_16_clients']}"),
        ]  # fmt: skip
    cal = results["calibration_ms"]
    rows.append(("CPU calibration loop, ms (start / end; lower = faster)", f"{cal[0]} / {cal[-1]}"))
    rows.append(("Probe send, accept → 3 deliveries sent", f"{results['probe_seconds']:g} s"))
    final = results["final"]
    rows.append(("Notifications accepted / stored", f"{final['accepted']} / {final['notifications_stored']}"))
    rows.append(("Deliveries expected / stored / finished (sent or skipped with a reason)",
                 f"{final['deliveries_expected']} / {final['deliveries']} / {final['deliveries_finished']}"))  # fmt: skip
    rows.append(("Final statuses", ", ".join(f"{k} {v}" for k, v in final["statuses"].items())))
    return rows


def profile_table(step: dict, top: int = 20) -> str:
    """py-spy's view of the profiled step: per process group, where its samples were."""
    out = [f"\nWhere the time went at {step['rate']:g} sends/s (py-spy --gil: Python on a CPU; % of each group's samples):"]
    for name, profile in step["profile"].items():
        if profile.get("error") or not profile["samples"]:
            out.append(f"  {name}: no samples ({profile.get('error', '').strip()[:200]})")
            continue
        out.append(f"  {name}: {profile['samples']} samples; on the stack (inclusive):")
        out += [f"    {pct:5.1f}%  {frame}" for frame, pct in profile["inclusive"][:top]]
        out.append("    at the top of the stack (self):")
        out += [f"    {pct:5.1f}%  {frame}" for frame, pct in profile["self"][:top]]
    return "\n".join(out)
