"""The machine's PostgreSQL limits, beside which the benchmarks' figures are read: a binary
COPY of 100,000 delivery rows into shard_0 (built by name, as the send service builds them),
then pgbench's 1-row INSERT transactions on 16 clients."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path


def postgres_limits(seconds: int) -> dict:
    from django.conf import settings
    from django.db import connections, transaction
    from django.utils import timezone

    from config.bulk import insert_rows, json_text
    from config.sharding import new_id
    from delivery.services.records import DELIVERY_ROW

    alias = "shard_0"
    database = settings.DATABASES[alias]["NAME"]
    now = timezone.now()
    payload = json_text({"subject": "s", "text": "t"})
    rows = [
        DELIVERY_ROW.row(
            id=new_id(1), notification_id=new_id(1), user_id="u", channel="email", priority="normal", status="queued",
            reason="", address="a@example.com", payload=payload, next_attempt_at=None, fallback_of=None, published_at=now,
            republish_at=now, created_at=now, updated_at=now,
        )
        for _ in range(100_000)
    ]  # fmt: skip
    started = time.perf_counter()
    with transaction.atomic(using=alias):
        insert_rows(alias, [DELIVERY_ROW.rows(rows)])
    copy_rows_per_s = len(rows) / (time.perf_counter() - started)
    with connections[alias].cursor() as cursor:
        cursor.execute("TRUNCATE delivery_delivery")
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_scratch (id uuid PRIMARY KEY, payload jsonb, created_at timestamptz)")
    script = Path(tempfile.mkdtemp()) / "insert.sql"
    script.write_text("""INSERT INTO bench_scratch VALUES (gen_random_uuid(), '{"a": 1}', now());\n""")
    out = subprocess.run(
        ["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-n", "-c", "16", "-j", "2", "-T", str(seconds), "-f", str(script), database],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    tps = float([line for line in out.splitlines() if line.startswith("tps")][0].split("=")[1].split()[0])
    with connections[alias].cursor() as cursor:
        cursor.execute("DROP TABLE bench_scratch")
    return {"copy_rows_per_s": round(copy_rows_per_s), "insert_txn_per_s_16_clients": round(tps)}
