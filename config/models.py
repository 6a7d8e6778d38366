"""The base for models that live on the user shards."""

from __future__ import annotations

import uuid

from django.db import models

from config.sharding import shard_for_id, shard_for_user


class ShardedQuerySet(models.QuerySet):
    def for_user(self, user_id: str) -> ShardedQuerySet:
        return self.using(shard_for_user(user_id))

    def for_id(self, value: uuid.UUID | str) -> ShardedQuerySet:
        return self.using(shard_for_id(value))


ShardedManager = models.Manager.from_queryset(ShardedQuerySet)


class ShardedModel(models.Model):
    """A model whose rows live on the shard of their ``user_id``.

    The router refuses to guess a shard: code names it with ``Model.objects.for_user(...)``,
    ``.for_id(...)`` or ``.using(alias)``; a loaded instance remembers its own shard.
    """

    objects = ShardedManager()

    class Meta:
        abstract = True
