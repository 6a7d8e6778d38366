"""Admin for models that live on the user shards.

A changelist shows one shard at a time (the "shard" filter); searching for a user id or a
notification/delivery id goes straight to the shard that holds it, so an operator finds a
user's rows without knowing where they live. Detail pages route by the object's own id.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction

from config.db_router import pinned_shard
from config.sharding import USER_ID_PATTERN, parse_routable_id, shard_aliases, shard_for_id, shard_for_user


class ReadOnlyMixin:
    """For rows that only the services write (notifications, deliveries, inbox)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ShardFilter(admin.SimpleListFilter):
    title = "shard"
    parameter_name = "shard"

    def __init__(self, request, params, model, model_admin):
        self.current = model_admin.shard_for_request(request)
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        return [(alias, alias) for alias in shard_aliases()]

    def queryset(self, request, queryset):
        return queryset  # the shard is chosen in ShardedModelAdmin.get_queryset

    def choices(self, changelist):
        for alias, label in self.lookup_choices:
            yield {
                "selected": alias == self.current,
                "query_string": changelist.get_query_string({self.parameter_name: alias}, ["q"]),
                "display": label,
            }


class ShardedModelAdmin(admin.ModelAdmin):
    """Base admin for sharded models. Search: a user id, or an id (UUID) of the row."""

    list_filter: tuple = (ShardFilter,)
    search_help_text = "Search by user id or by id; the search goes to the shard that holds it."
    routable_id_fields: tuple[str, ...] = ("id",)

    def shard_for_request(self, request) -> str:
        shard = request.GET.get("shard")
        if shard in shard_aliases():
            return shard
        query = (request.GET.get("q") or "").strip()
        routable = parse_routable_id(query)
        if routable is not None:
            return shard_for_id(routable)
        if query and USER_ID_PATTERN.match(query):
            return shard_for_user(query)
        return shard_aliases()[0]

    def get_queryset(self, request):
        return super().get_queryset(request).using(self.shard_for_request(request))

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        routable = parse_routable_id(term)
        if routable is not None:
            for field in self.routable_id_fields:
                matches = queryset.filter(**{field: routable})
                if matches.exists():
                    return matches, False
            return queryset.none(), False
        return queryset.filter(user_id=term), False

    def object_shard(self, object_id: str) -> str | None:
        routable = parse_routable_id(object_id)
        return shard_for_id(routable) if routable is not None else None

    def _write_shard(self, request, object_id) -> str:
        """The shard a POST to the change or delete view writes to."""
        if object_id is not None:
            alias = self.object_shard(object_id)
            if alias is not None:
                return alias
        user_id = (request.POST.get("user_id") or "").strip()
        if USER_ID_PATTERN.match(user_id):
            return shard_for_user(user_id)
        return shard_aliases()[0]  # nothing to write (e.g. the form is invalid)

    # Django's admin opens its transaction with router.db_for_write(model), which cannot
    # know the shard; open it on the object's shard instead.
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        alias = self._write_shard(request, object_id)
        with pinned_shard(alias):
            if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
                return self._changeform_view(request, object_id, form_url, extra_context)
            with transaction.atomic(using=alias):
                return self._changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        alias = self._write_shard(request, object_id)
        with pinned_shard(alias), transaction.atomic(using=alias):
            return self._delete_view(request, object_id, extra_context)

    def changelist_view(self, request, extra_context=None):
        with pinned_shard(self.shard_for_request(request)):
            return super().changelist_view(request, extra_context)

    def get_object(self, request, object_id, from_field=None):
        alias = self.object_shard(object_id)
        if alias is None:
            return None
        model = self.model
        field = model._meta.pk if from_field is None else model._meta.get_field(from_field)
        try:
            return model._default_manager.using(alias).get(**{field.name: field.to_python(object_id)})
        except (model.DoesNotExist, ValidationError, ValueError):
            return None


class UserKeyedShardedModelAdmin(ShardedModelAdmin):
    """For models whose primary key is the user id itself (recipients)."""

    def object_shard(self, object_id: str) -> str | None:
        return shard_for_user(object_id) if USER_ID_PATTERN.match(object_id) else None
