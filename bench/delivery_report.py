"""The table bench/delivery prints (from its JSON, so a stored result can be printed again:
``python -m bench.delivery_report bench/results/delivery.json``)."""

from __future__ import annotations

import json
import sys

GROUPS = ("worker", "fake", "postgres", "web", "beat+maintenance", "redis", "rest_of_machine")


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _met(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def table(results: dict) -> str:
    lines = [
        f"bench/delivery — commit {results['commit']}{' (dirty)' if results['commit_dirty'] else ''}, {results['when']}",
        f"calibration {results['calibration_ms'][0]} ms at start, {results['calibration_ms'][-1]} ms at end (lower = faster)",
    ]
    if limits := results.get("limits"):
        lines.append(
            f"limits: Redis SET {_fmt(limits['redis']['set_ops_per_s'], 0)}/s "
            f"({_fmt(limits['redis']['set_ops_per_s_pipelined_16'], 0)}/s pipelined x16); PostgreSQL COPY "
            f"{_fmt(limits['postgres']['copy_rows_per_s'])} rows/s, INSERT txn {_fmt(limits['postgres']['insert_txn_per_s_16_clients'])}/s"
        )
    targets = results["targets"]
    if runs := results.get("throughput"):
        lines += [
            "",
            "| run | sent / deliveries | sent/s (first claim → last sent) | seconds: claim → last sent (first → last sent) | provider requests | CPU ms/delivery: "
            + " / ".join(GROUPS)
            + " | target |",
            "|---|---|---|---|---|---|---|",
        ]
        for run in runs:
            goal = targets.get(f"{run['channel']}_per_s")
            verdict = (
                f"≥ {goal:,}/s: {_met((run['per_s'] or 0) >= goal)}"
                if run["label"].startswith("batched") and goal
                else ""
            )
            requests = ", ".join(f"{k} {v:,}" for k, v in run["provider_requests"].items())
            cpu = " / ".join(_fmt(run["cpu_ms_per_delivery"].get(g), 2) for g in GROUPS)
            lines.append(
                f"| {run['channel']} {run['label']} | {run['sent']:,}/{run['deliveries']:,} | {_fmt(run['per_s'])} | "
                f"{run['first_claim_to_last_sent_s']} s ({run['first_to_last_sent_s']} s) | {requests} | {cpu} | {verdict} |"
            )
    if sms := results.get("sms"):
        ok = abs(sms["deviation_pct"]) <= targets["sms_within_pct"] and sms["backlog_outlasted_window"]
        lines += [
            "",
            f"SMS (Twilio, limit {sms['limit_per_s']:g}/s): {sms['sent_in_window']} sent in the {sms['window_s']:g} s after the first → "
            f"{sms['achieved_per_s']}/s ({sms['deviation_pct']:+} %); after the first second {sms['steady_per_s']}/s; "
            f"max in one second {sms['max_in_one_second']}; within {targets['sms_within_pct']:g} %: {_met(ok)}",
        ]
    if out := results.get("outage"):
        cleared = out["backlog_cleared_after_recovery_s"]
        ok = out["lost"] == 0 and cleared is not None and cleared <= out["circuit_cooldown_s"]
        lines += [
            "",
            f"Outage: {out['offered_per_s']:g} emails/s, SendGrid 503 for {out['outage_s']:g} s: {out['sent']:,}/{out['deliveries']:,} sent "
            f"(lost {out['lost']}; {out['deliveries_retried']} retried, at most {out['attempts_max']} attempts); backlog max "
            f"{out['backlog_max']:,}; first send {out['first_sent_after_recovery_s']} s after recovery; backlog back to normal "
            f"{cleared} s after recovery (cool-down {out['circuit_cooldown_s']:g} s); nothing lost and within the cool-down: {_met(ok)}",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(open(sys.argv[1]).read())))
