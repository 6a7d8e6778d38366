import uuid
from collections import Counter

import pytest

from config import sharding
from config.sharding import (
    BUCKETS,
    ShardMapError,
    bucket_for,
    bucket_of_id,
    build_shard_map,
    new_id,
    new_id_for_user,
    parse_routable_id,
    shard_for_id,
    shard_for_user,
)


def test_bucket_is_stable_and_in_range():
    assert bucket_for("alice") == bucket_for("alice")
    assert all(0 <= bucket_for(f"user-{i}") < BUCKETS for i in range(1000))
    # Pinned values (blake2b-64 of the UTF-8 id, mod 1024): changing the hash would
    # silently move every user to another shard.
    assert bucket_for("alice") == 649
    assert bucket_for("bob") == 146


def test_buckets_spread_users_evenly():
    counts = Counter(bucket_for(f"user-{i}") * 2 // BUCKETS for i in range(20_000))
    assert abs(counts[0] - counts[1]) < 600  # two halves within 3%


def test_default_map_splits_buckets_evenly():
    assert build_shard_map(["a", "b"]) == ((0, 511, "a"), (512, 1023, "b"))
    assert build_shard_map(["a", "b", "c"]) == ((0, 341, "a"), (342, 682, "b"), (683, 1023, "c"))


def test_explicit_map_is_validated():
    assert build_shard_map(["a", "b"], "0-99:a,100-1023:b") == ((0, 99, "a"), (100, 1023, "b"))
    with pytest.raises(ShardMapError, match="gaps or overlaps"):
        build_shard_map(["a", "b"], "0-99:a,101-1023:b")
    with pytest.raises(ShardMapError, match="gaps or overlaps"):
        build_shard_map(["a", "b"], "0-600:a,500-1023:b")
    with pytest.raises(ShardMapError, match="must reach"):
        build_shard_map(["a", "b"], "0-99:a,100-1000:b")
    with pytest.raises(ShardMapError, match="unknown shard"):
        build_shard_map(["a"], "0-1023:z")
    with pytest.raises(ShardMapError, match="FIRST-LAST:ALIAS"):
        build_shard_map(["a"], "everything:a")


def test_ids_are_uuid7_carrying_the_bucket():
    for bucket in (0, 1, 511, 512, 1023):
        value = new_id(bucket)
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
        assert bucket_of_id(value) == bucket
        assert bucket_of_id(str(value)) == bucket


def test_ids_sort_by_creation_time():
    ids = [new_id(5) for _ in range(200)]
    assert ids == sorted(ids, key=lambda u: u.int)


def test_a_users_ids_route_back_to_the_users_shard():
    for i in range(300):
        user_id = f"u{i}"
        assert shard_for_id(new_id_for_user(user_id)) == shard_for_user(user_id)


def test_parse_routable_id_rejects_foreign_ids():
    assert parse_routable_id("not-a-uuid") is None
    assert parse_routable_id(str(uuid.uuid4())) is None  # v4: not one of ours
    value = new_id(3)
    assert parse_routable_id(str(value)) == value


def test_map_override_moves_buckets(settings):
    user = next(f"x{i}" for i in range(10_000) if bucket_for(f"x{i}") < 100)
    settings.SHARD_BUCKET_MAP = build_shard_map(settings.SHARD_ALIASES, "0-99:shard_1,100-1023:shard_0")
    try:
        assert shard_for_user(user) == "shard_1"
    finally:
        sharding.reset_shard_table()


def test_forked_workers_do_not_repeat_each_others_ids():
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: like a gunicorn or Celery worker forked from its master
        os.write(write, ",".join(str(new_id(7)) for _ in range(50)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_ids = set(os.read(read, 1 << 16).decode().split(","))
    parent_ids = {str(new_id(7)) for _ in range(50)}
    assert len(child_ids) == 50 and not child_ids & parent_ids
    random_parts = {i.replace("-", "")[-13:] for i in child_ids | parent_ids}
    assert len(random_parts) == 100
