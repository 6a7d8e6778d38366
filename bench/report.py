"""Tables and comparisons of bench/api_accept results (medians over rounds, with ranges)."""

from __future__ import annotations

import math
import statistics

PHASES = ("single_at_rate", "single_max", "bulk")

# What the comparison reports per phase: (key, phase, path into a round's summary, unit, label).
COMPARED = (
    ("single_at_rate_p50_ms", "single_at_rate", ("p50_ms",), "ms", "Single send at {rate:g} req/s offered: p50"),
    ("single_at_rate_p99_ms", "single_at_rate", ("p99_ms",), "ms", "Single send at {rate:g} req/s offered: p99"),
    ("single_max_requests_per_s", "single_max", ("requests_per_s",), "req/s", "Single send, max sustained ({concurrency} conns)"),
    ("bulk_items_per_s", "bulk", ("items_per_s",), "/s", "Bulk of 1000, {bulk_concurrency} concurrent"),
    ("bulk_web_cpu_us_per_item", "bulk", ("cpu_us_per_item", "web"), "µs", "  CPU µs per bulk notification, web"),
    ("bulk_postgres_cpu_us_per_item", "bulk", ("cpu_us_per_item", "postgres"), "µs", "  CPU µs per bulk notification, PostgreSQL"),
)
# The product owner's rule: bulk stays within 10 % of the baseline measured in the same run.
BULK_MIN_RATIO = 0.90


def value_of(summary: dict, *path: str) -> float:
    value = summary
    for key in path:
        value = value.get(key, {}) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) else float("nan")


def median_of(rounds: list[dict], *path: str) -> float:
    values = [v for v in (value_of(summary, *path) for summary in rounds) if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def spread(rounds: list[dict], *path: str) -> str:
    values = [value_of(summary, *path) for summary in rounds]
    return f"{min(values):g}–{max(values):g}" if values else "–"


def failed_requests(api: dict) -> int:
    return sum(r["requests"] - r["ok"] + r["errors"] for phase in api["rounds"].values() for r in phase if "requests" in r)


def _limit_rows(results: dict) -> list[tuple[str, str, str]]:
    redis, pg = results["limits"]["redis"], results["limits"]["postgres"]
    return [
        ("Redis SET ops/s: 50 clients / pipelined ×16", f"{redis['set_ops_per_s']:.0f} / {redis['set_ops_per_s_pipelined_16']:.0f}", "limit"),
        ("PostgreSQL COPY, delivery rows/s", f"{pg['copy_rows_per_s']}", "limit"),
        ("PostgreSQL 1-row INSERT txn/s (pgbench, 16 clients)", f"{pg['insert_txn_per_s_16_clients']}", "limit"),
        ("CPU calibration loop, ms (start / end)", f"{results['calibration_ms'][0]} / {results['calibration_ms'][1]}", "lower = faster"),
    ]


def _render(header: list[str], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [tuple(header), *rows] if i < len(row)) for i in range(len(header))]
    widths[-1] = 0  # the last column is not padded

    def line(cells) -> str:
        cells = list(cells) + [""] * (len(header) - len(cells))
        return " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False)).rstrip()

    out = [line(header), "-" * (sum(widths) + 3 * (len(widths) - 1) + 10)]
    return "\n".join([*out, *(line(row) for row in rows)])


def table(results: dict, args) -> str:
    """The single-commit table."""
    rounds = results["api"]["rounds"]
    empty = [{"p50_ms": float("nan"), "p99_ms": float("nan"), "requests_per_s": 0, "items_per_s": 0}]
    rate, sat, bulk = (rounds.get(name, empty) for name in PHASES)
    m = median_of

    def cpu_line(phase):
        return " / ".join(f"{m(phase, 'cpu_us_per_item', k):.0f}" for k in ("web", "postgres", "redis"))

    rows = [
        (f"Single send at {args.rate:g} req/s offered: p50", f"{m(rate, 'p50_ms'):.1f} ms ({spread(rate, 'p50_ms')})", "≤ 10 ms"),
        (f"Single send at {args.rate:g} req/s offered: p99", f"{m(rate, 'p99_ms'):.1f} ms ({spread(rate, 'p99_ms')})", "≤ 50 ms"),
        (f"Single send, max sustained ({args.concurrency} conns)", f"{m(sat, 'requests_per_s'):.0f} req/s ({spread(sat, 'requests_per_s')})", ""),
        (f"Bulk of 1000, {args.bulk_concurrency} concurrent", f"{m(bulk, 'items_per_s'):.0f} notifications/s ({spread(bulk, 'items_per_s')})", "≥ 10,000/s"),
        ("  CPU µs per notification: web / PostgreSQL / Redis", cpu_line(bulk), ""),
        ("  CPU µs per single send:  web / PostgreSQL / Redis", cpu_line(sat), ""),
        *_limit_rows(results),
        ("Requests failed; notifications stored / accepted",
         f"{failed_requests(results['api'])}; {results['stored_notifications']} / {results['accepted']}", "0; equal"),
    ]  # fmt: skip
    return _render(["measure", "median of rounds (min–max)", "target"], rows)


def compare(current: dict, baseline: dict, phases: list[str]) -> dict:
    """Per measure: both medians and ranges, the ratio current/baseline of the medians, and the
    ratios of the rounds run back to back (each round ran both commits, one after the other)."""
    out = {}
    for key, phase, path, unit, _label in COMPARED:
        if phase not in phases:
            continue
        cur, base = current["rounds"][phase], baseline["rounds"][phase]
        cur_values = [value_of(r, *path) for r in cur]
        base_values = [value_of(r, *path) for r in base]
        paired = [round(c / b, 3) for c, b in zip(cur_values, base_values, strict=False) if b]
        cur_median, base_median = median_of(cur, *path), median_of(base, *path)
        out[key] = {
            "unit": unit,
            "current": cur_median,
            "current_range": [min(cur_values), max(cur_values)],
            "baseline": base_median,
            "baseline_range": [min(base_values), max(base_values)],
            "ratio": round(cur_median / base_median, 3) if base_median else None,
            "paired_round_ratios": paired,
        }
    return out


def _number(value: float, unit: str) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:,.1f}" if unit == "ms" else f"{value:,.0f}"


def _fmt(value: float, unit: str, lo: float, hi: float) -> str:
    return f"{_number(value, unit)} {unit} ({_number(lo, unit)}–{_number(hi, unit)})"


def compare_table(results: dict, args) -> str:
    """The two-commit table: medians (ranges) of both, their ratio, the back-to-back ratios."""
    comparison = results["comparison"]
    current, baseline = results["commit"], results["baseline"]["commit"]
    labels = {key: label.format(**vars(args)) for key, _phase, _path, _unit, label in COMPARED}
    rows = []
    for key, entry in comparison.items():
        unit = entry["unit"]
        lo, hi = entry["current_range"]
        blo, bhi = entry["baseline_range"]
        paired = entry["paired_round_ratios"]
        ratio = f"{entry['ratio']:.2f}" if entry["ratio"] is not None else "–"
        if paired:
            ratio += f" (rounds {min(paired):.2f}–{max(paired):.2f})"
        target = f"≥ {BULK_MIN_RATIO:.2f}" if key == "bulk_items_per_s" else ""
        rows.append((labels[key], _fmt(entry["current"], unit, lo, hi), _fmt(entry["baseline"], unit, blo, bhi), ratio, target))
    for name, value, target in _limit_rows(results):
        rows.append((name, value, "", "", target))
    rows.append(("Requests failed; notifications stored / accepted",
                 f"{failed_requests(results['api'])}; {results['stored_notifications']} / {results['accepted']}",
                 f"{failed_requests(results['baseline']['api'])}; {results['baseline']['stored_notifications']} / "
                 f"{results['baseline']['accepted']}", "", "0; equal"))  # fmt: skip
    dirty = "+uncommitted" if results.get("commit_dirty") else ""
    header = ["measure", f"current {current}{dirty}", f"baseline {baseline}", "current/baseline", "target"]
    return _render(header, rows)


def accepted(api: dict) -> int:
    total = api["warmup_single"]["items_ok"] + api["warmup_bulk"]["items_ok"]
    return total + sum(r["items_ok"] for phase in api["rounds"].values() for r in phase)
