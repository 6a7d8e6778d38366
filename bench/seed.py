"""Prepare (or count) the benchmark's data in whichever tree is the working directory.

Run as a script with the tree to prepare as ``cwd``, so the code doing the work — models,
migrations, services — is that tree's own, even when it is an older commit whose bench code
differs (``bench.api_accept --baseline``). It therefore imports nothing from ``bench`` and
uses only long-standing APIs: the ``migrate`` command, ``seed_catalog``, ``create_api_client``,
``shard_for_user``/``new_id_for_user`` and the ORM's ``bulk_create`` with keyword fields
(tolerant of columns added later with defaults). The environment names the databases.

    cd <tree> && python <this file> seed [users]   # migrate, seed; print the API key
    cd <tree> && python <this file> count          # print the notifications stored

The result is the last stdout line, as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

# The tree being prepared, not the directory of this file, must come first on the path.
sys.path[0] = os.getcwd()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

USERS = 10_000
BATCH = 1_000


def seed(users: int) -> dict:
    import redis
    from django.core.management import call_command
    from django.utils import timezone

    from config.sharding import new_id_for_user, shard_for_user
    from delivery.models import Device
    from notifications.models import Recipient
    from notifications.services.api_keys import create_api_client
    from notifications.services.demo import seed_catalog

    call_command("migrate", verbosity=0, interactive=False)
    seed_catalog()
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    now = timezone.now()
    recipients: dict[str, list] = {}
    devices: dict[str, list] = {}
    for i in range(users):
        user = f"bench-user-{i}"
        alias = shard_for_user(user)
        recipients.setdefault(alias, []).append(
            Recipient(
                user_id=user, email=f"{user}@example.com", email_verified=True, email_bounced=False,
                phone="+14155550100", phone_verified=True, locale="en", timezone="UTC", created_at=now, updated_at=now,
            )
        )  # fmt: skip
        devices.setdefault(alias, []).append(
            Device(
                id=new_id_for_user(user), user_id=user, platform="android", token=f"tok-{user}", active=True,
                deactivated_reason="", created_at=now, updated_at=now, last_seen_at=now,
            )
        )  # fmt: skip
    for alias, rows in recipients.items():
        Recipient.objects.using(alias).bulk_create(rows, batch_size=BATCH)
        Device.objects.using(alias).bulk_create(devices[alias], batch_size=BATCH)
    client = create_api_client(f"bench-{uuid.uuid4().hex[:6]}", allowed_types=["*"], may_send_critical=True)
    # Which tree's code did this, so the caller can check it was the one meant.
    return {"key": client.key, "tree": str(Path(sys.modules["config"].__file__).resolve().parents[1])}


def count() -> dict:
    from django.conf import settings

    from notifications.models import Notification

    return {"stored": sum(Notification.objects.using(alias).count() for alias in settings.SHARD_ALIASES)}


def main() -> None:
    import django

    django.setup()
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "seed":
        result = seed(int(sys.argv[2]) if len(sys.argv) > 2 else USERS)
    elif command == "count":
        result = count()
    else:
        sys.exit("usage: seed.py seed [users] | count")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
