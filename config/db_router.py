"""Routes sharded models to their shard and everything else to the global database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS

from config.sharding import USER_ID_PATTERN, shard_aliases, shard_for_user


class ShardNotChosen(LookupError):
    """A sharded model was queried without saying which shard."""


_pinned_shard: ContextVar[str | None] = ContextVar("pinned_shard", default=None)


@contextmanager
def pinned_shard(alias: str) -> Iterator[None]:
    """Route unqualified queries of sharded models to ``alias`` inside this block.

    For framework code that queries through ``_default_manager`` without naming a database
    (admin forms' uniqueness checks, deletion collectors); service code names its shard.
    """
    token = _pinned_shard.set(alias)
    try:
        yield
    finally:
        _pinned_shard.reset(token)


def is_sharded_model(model) -> bool:
    from config.models import ShardedModel

    return isinstance(model, type) and issubclass(model, ShardedModel)


def _is_sharded_label(app_label: str, model_name: str) -> bool:
    try:
        return is_sharded_model(apps.get_model(app_label, model_name))
    except LookupError:
        return False


class ShardRouter:
    def _route(self, model, hints) -> str:
        if not is_sharded_model(model):
            return DEFAULT_DB_ALIAS
        instance = hints.get("instance")
        if instance is not None:
            if instance._state.db:
                return instance._state.db
            user_id = getattr(instance, "user_id", None)
            if isinstance(user_id, str) and USER_ID_PATTERN.match(user_id):
                return shard_for_user(user_id)
        pinned = _pinned_shard.get()
        if pinned is not None:
            return pinned
        raise ShardNotChosen(
            f"{model.__name__} lives on the user shards; use {model.__name__}.objects.for_user(), "
            ".for_id() or .using(alias)"
        )

    def db_for_read(self, model, **hints):
        return self._route(model, hints)

    def db_for_write(self, model, **hints):
        return self._route(model, hints)

    def allow_relation(self, obj1, obj2, **hints):
        return obj1._state.db == obj2._state.db

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        on_shard = db in shard_aliases()
        if model_name is None:
            # Operations not tied to a model (e.g. data migrations of contrib apps) run on
            # the global database only, unless they say they are for the shards.
            return hints.get("shards", False) == on_shard
        return _is_sharded_label(app_label, model_name) == on_shard
