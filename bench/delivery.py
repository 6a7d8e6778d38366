"""bench/delivery: emails/s and push messages/s end to end (queued → sent) through real
Celery workers and the real provider SDKs, talking to the fake provider server run as a
process of its own; the SMS rate against its limit; a provider outage.

    python -m bench.delivery            # the full run (~6 min)
    python -m bench.delivery --quick    # smaller counts and shorter phases (~3 min)
    python -m bench.delivery --phases email,outage --cooldown 10   # some phases, other settings

In one run, on databases notify_dbench, notify_dbench_shard_0/1 (recreated) and Redis DB 10:

1. Seeds 10,000 recipients (an email, a phone, one Android device each), measures the
   machine's Redis and PostgreSQL limits (as bench/api_accept) and a calibration loop.
2. Starts the fake providers (``python -m tests.fakes.serve``: SendGrid, Twilio, Google OAuth,
   FCM through an HTTPS proxy with a throwaway CA) and, from the Procfile, web, beat and the
   maintenance worker, with EMAIL_PROVIDERS=sendgrid, SMS_PROVIDERS=twilio, PUSH_PROVIDERS=fcm
   pointed at the fake through the SDKs' own settings (API host, base URL, token_uri,
   HTTPS_PROXY + REQUESTS_CA_BUNDLE).
3. Email and push, batched (DELIVERY_BATCH_SIZE) and one by one (DELIVERY_BATCH_SIZES=
   <channel>=1): N deliveries are accepted through the API's bulk send (channels [channel])
   while the channel's worker is stopped; then its Procfile line starts it, and the rate is
   (N-1) / (last sent_at - first sent_at). CPU per delivery per process group (the worker,
   the fake server, PostgreSQL backends of these databases, web, beat + maintenance, Redis)
   from the first send to the last.
4. SMS: a backlog of (60 + 8) s at the configured Twilio rate, sent by the SMS worker:
   messages sent in the 60 s after the first one, against the limit (target within 5 %).
5. Outage (beside the SMS phase, to keep the run short): single email sends at 20/s; after
   10 s the fake answers SendGrid 503 for 30 s. Every delivery must end sent; the time from the fake's recovery until the backlog is
   back to its level before the outage, against CIRCUIT_COOLDOWN_SECONDS.

Prints a table and writes bench/results/delivery.json. Exits non-zero if a delivery was lost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import delivery_phases as phases  # noqa: E402
from bench import delivery_report, procfile  # noqa: E402
from bench.api_accept import calibrate, redis_limits  # noqa: E402
from bench.delivery_stream import (  # noqa: E402
    _DROPPED_ENV,
    free_port,
    procfile_env,
    sweeps_running,
    wait_for,
    web_ready,
    workers_ready,
)
from bench.limits import postgres_limits  # noqa: E402
from bench.results import write_results  # noqa: E402
from bench.targets import PG, Target, _describe, prepare  # noqa: E402

DATABASES = ("notify_dbench", "notify_dbench_shard_0", "notify_dbench_shard_1")
REDIS_DB = 10
# Providers' settings dropped from the caller's shell: the run sets its own.
_PROVIDER_ENV = ("EMAIL_PROVIDERS", "SMS_PROVIDERS", "PUSH_PROVIDERS", "DELIVERY_BATCH_SIZES", "PROVIDER_RATES",
                 "CIRCUIT_COOLDOWN_SECONDS", "CIRCUIT_FAILURE_THRESHOLD", "HTTPS_PROXY", "https_proxy", "REQUESTS_CA_BUNDLE")  # fmt: skip
TARGETS = {"email_per_s": 2000, "push_per_s": 5000, "sms_within_pct": 5.0}
# (The outage's last part lasts at least the cool-down + 5 s, so the probe comes within the stream.)
FULL = {
    "emails": 6_000,
    "pushes": 6_000,
    "one_by_one": 300,
    "sms_seconds": 60.0,
    "outage": (10.0, 30.0, 35.0),
    "rate": 20.0,
    "cooldown": None,
    "pgbench_seconds": 5,
}
QUICK = {
    "emails": 2_000,
    "pushes": 2_000,
    "one_by_one": 200,
    "sms_seconds": 15.0,
    "outage": (5.0, 10.0, 15.0),
    "rate": 10.0,
    "cooldown": 10.0,
    "pgbench_seconds": 3,
}


def start_fake(work_dir: Path) -> tuple[subprocess.Popen, dict]:
    """The fake provider server, its own process (its CPU is counted apart)."""
    log = (work_dir / "fake.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.serve", "--dir", str(work_dir / "fake")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=log, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )  # fmt: skip
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the fake provider server did not start; see {work_dir / 'fake.log'}")
    return proc, json.loads(line)


def provider_env(fake: dict, cooldown: float | None) -> dict[str, str]:
    """The real providers, each SDK pointed at the fake through its own configuration."""
    env = {
        "EMAIL_PROVIDERS": "sendgrid",
        "SMS_PROVIDERS": "twilio",
        "PUSH_PROVIDERS": "fcm",
        "SENDGRID_API_KEY": "SG.bench-key",
        "SENDGRID_FROM_EMAIL": "notify@example.org",
        "SENDGRID_API_HOST": fake["url"],
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "bench-twilio-token",
        "TWILIO_FROM": "+15005550006",
        "TWILIO_API_BASE_URL": fake["url"],
        "FIREBASE_CREDENTIALS": fake["service_account"],
        # FCM's endpoint is fixed in the SDK: it reaches the fake as its HTTPS proxy.
        "HTTPS_PROXY": fake["url"],
        "REQUESTS_CA_BUNDLE": fake["ca_bundle"],
        "NO_PROXY": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
    }
    if cooldown is not None:
        env["CIRCUIT_COOLDOWN_SECONDS"] = str(cooldown)
    return env


def _timed(what, *args, **kwargs) -> dict:
    started = time.monotonic()
    result = what(*args, **kwargs)
    result["phase_s"] = round(time.monotonic() - started, 1)
    return result


def _sms(ctx: phases.Context, plan: dict, limit: float) -> dict:
    print(f"sms: a backlog at the Twilio limit ({limit:g}/s) for {plan['sms_seconds']:g} s...", flush=True)
    result = _timed(phases.sms_rate, ctx, plan["sms_seconds"], limit, timeout=plan["sms_seconds"] + 90)
    print(f"  sms: {result['achieved_per_s']} /s ({result['deviation_pct']:+} %) in {result['phase_s']} s", flush=True)
    return result


def _outage(ctx: phases.Context, plan: dict, cooldown: float) -> dict:
    before_s, outage_s, after_s = plan["outage"]
    after_s = max(after_s, cooldown + 5)
    rate = plan["rate"]
    print(f"outage: {rate:g} emails/s; SendGrid answers 503 for {outage_s:g} s after {before_s:g} s...", flush=True)
    result = _timed(phases.outage, ctx, rate, before_s, outage_s, after_s, cooldown, timeout=cooldown * 4 + 120)
    cleared = result["backlog_cleared_after_recovery_s"]
    print(f"  outage: lost {result['lost']}; backlog back to normal {cleared} s after recovery", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts and shorter phases")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--phases", default="email,push,sms,outage", help="which phases to run")
    parser.add_argument(
        "--cooldown", type=float, default=None, help="CIRCUIT_COOLDOWN_SECONDS (default: the setting's)"
    )
    parser.add_argument("--no-limits", action="store_true", help="skip the Redis/PostgreSQL limit measurements")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "delivery.json"))
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    wanted = set(args.phases.split(","))

    run_started = time.monotonic()
    target = _describe(Target("dbench", ROOT, DATABASES[0], list(DATABASES[1:]), REDIS_DB))
    os.environ.update(target.env)
    for name in (*_DROPPED_ENV[1:], *_PROVIDER_ENV):
        os.environ.pop(name, None)
    print(f"preparing databases and {args.users:,} recipients ({target.commit})...", flush=True)
    prepare(target, args.users)
    import django

    django.setup()
    from django.conf import settings

    if args.cooldown is None:
        args.cooldown = plan["cooldown"]
    cooldown = args.cooldown if args.cooldown is not None else settings.CIRCUIT_COOLDOWN_SECONDS
    calibration = [calibrate()]
    limits = (
        {}
        if args.no_limits
        else {"redis": redis_limits(), "postgres": postgres_limits(seconds=plan["pgbench_seconds"])}
    )
    work_dir = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    (work_dir / "var").mkdir()
    results: dict = {"prepare_s": round(time.monotonic() - run_started, 1)}
    with ExitStack() as stack:
        fake_proc, fake = start_fake(work_dir)
        stack.callback(lambda: (fake_proc.terminate(), fake_proc.wait(10)))
        port, ws_port = free_port(), free_port()
        env = procfile_env(target, port, ws_port, work_dir / "var", provider_env(fake, args.cooldown))
        by_name = {p.name: p for p in procfile.parse()}
        steady = [by_name["web"], by_name["beat"], by_name["worker-maintenance"]]
        stack.callback(procfile.stop, steady)
        print(
            f"fake providers at {fake['url']}; starting web, beat, worker-maintenance (logs in {work_dir / 'logs'})...",
            flush=True,
        )
        procfile.start(steady, env, work_dir / "logs")
        wait_for("the web process to answer /readyz", lambda: web_ready(port), steady)
        wait_for("the maintenance worker to answer a ping", lambda: workers_ready(["maintenance"]), steady)
        wait_for(
            "beat and the maintenance worker to sweep every shard",
            lambda: sweeps_running(env["REDIS_URL"], settings.SHARD_ALIASES),
            steady,
        )
        ctx = phases.Context(
            port=port, key=target.key, shard_urls=[f"{PG}/{n}" for n in target.shard_dbs], databases=list(DATABASES),
            users=args.users, fake_url=fake["url"], env=env, log_dir=work_dir / "logs",
            groups={"fake": [fake_proc.pid], "web": [by_name["web"].pid], "beat+maintenance": [by_name["beat"].pid, by_name["worker-maintenance"].pid]},
            worker_commands={c: by_name[f"worker-{c}"].command for c in ("email", "push", "sms")},
        )  # fmt: skip
        runs = []
        # Email: the same content for all (a campaign: SendGrid personalizations, one request
        # per batch) and distinct content (one request per message), then one by one.
        plans = [
            # One part per worker start: parts sharing a worker overlap (a fast campaign batch
            # goes out while a slow distinct-content batch is still sending), which mixes their CPU.
            ("email", {}, [("batched_same_content", plan["emails"], True)]),
            ("email", {}, [("batched_distinct_content", plan["emails"] // 2, False)]),
            ("email", {"DELIVERY_BATCH_SIZES": "email=1"}, [("one_by_one", plan["one_by_one"], True)]),
            ("push", {}, [("batched", plan["pushes"], False)]),
            ("push", {"DELIVERY_BATCH_SIZES": "push=1"}, [("one_by_one", plan["one_by_one"], False)]),
        ]  # fmt: skip
        for channel, extra, parts in plans:
            if channel not in wanted:
                continue
            described = ", then ".join(f"{n:,} {label}" for label, n, _ in parts)
            print(
                f"{channel}: {described} preloaded, then the worker{' with ' + str(extra) if extra else ''}...",
                flush=True,
            )
            started = time.monotonic()
            for run in phases.throughput(ctx, channel, parts, extra, timeout=240):
                run["phase_s"] = round(time.monotonic() - started, 1)
                print(f"  {run['label']}: {run['per_s']} /s; {run['statuses']}; phase {run['phase_s']} s", flush=True)
                runs.append(run)
        results["throughput"] = runs
        # SMS and the outage run side by side (the run stays under ~6 minutes): the SMS worker
        # sends 10 messages/s, a load the outage's email figures barely notice; its CPU
        # counts under the outage's "rest of the machine".
        with ThreadPoolExecutor(1) as pool:
            sms = pool.submit(_sms, ctx, plan, settings.PROVIDER_RATES.get("twilio", 0.0)) if "sms" in wanted else None
            if "outage" in wanted:
                results["outage"] = _outage(ctx, plan, cooldown)
            if sms is not None:
                results["sms"] = sms.result()
        calibration.append(calibrate())
    results["total_s"] = round(time.monotonic() - run_started, 1)
    results = {
        "benchmark": "delivery",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": target.commit,
        "commit_dirty": target.dirty,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {
            **vars(args),
            "plan": plan,
            "batch_sizes": settings.DELIVERY_BATCH_SIZE,
            "circuit_cooldown_s": cooldown,
            "procfile": {p.name: p.command for p in by_name.values()},
        },  # fmt: skip
        "targets": TARGETS,
        "limits": limits,
        "calibration_ms": calibration,
        "logs": str(work_dir / "logs"),
        **results,
    }
    output = write_results(args.output, results)
    print(delivery_report.table(results))
    print(f"\nwrote {output}; process logs in {work_dir / 'logs'}")
    lost = sum(r["deliveries"] - r["sent"] for r in results.get("throughput", []))
    lost += results.get("outage", {}).get("lost", 0) + (
        results["sms"]["deliveries"] - results["sms"]["sent"] if "sms" in results else 0
    )
    if lost:
        sys.exit(f"{lost} deliveries did not end sent: see the statuses above")


if __name__ == "__main__":
    main()
