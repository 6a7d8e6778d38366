"""Admin for models that live on the user shards.

A changelist lists every shard at once: each shard runs the changelist's own filtered,
searched and ordered query for the rows the page needs, and the pages are merged in Python
by the same ordering (ids are UUIDv7, so ``-id`` is newest first on every shard). Counts and
listings are bounded per shard (``shard_row_cap``). The "shard" filter narrows the list to
one shard; an exact user id or row id in the query string (``?user_id=``, ``?id=``) goes
straight to the shard that holds it.

Search takes a user id prefix or an exact row id. Detail pages and actions route every
object by its own id, so selections spanning shards work.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import model_ngettext
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Model, Q, QuerySet
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from config.admin_changelist import ShardedChangeList
from config.db_router import pinned_shard
from config.sharding import USER_ID_PATTERN, parse_routable_id, shard_aliases, shard_for_id, shard_for_user


def admin_link(url_name: str, label: object, *args: object, query: str = "") -> str:
    """An HTML link to an admin page by URL name (``admin:app_model_change``); names, not
    imports, so an app can link to another app's pages without importing it."""
    return format_html('<a href="{}{}">{}</a>', reverse(url_name, args=args), query, label)


def user_link(user_id: str) -> str:
    """A user id linking to the user's recipient page."""
    return admin_link("admin:notifications_recipient_change", user_id, user_id)


def rows_by_shard(rows: Iterable[Model]) -> dict[str, list[Model]]:
    grouped: dict[str, list[Model]] = defaultdict(list)
    for row in rows:
        grouped[row._state.db].append(row)
    return grouped


class ReadOnlyMixin:
    """For rows that only the services write (notifications, deliveries, inbox)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ShardFilter(admin.SimpleListFilter):
    title = "shard"
    parameter_name = "shard"

    def lookups(self, request, model_admin):
        return [(alias, alias) for alias in shard_aliases()]

    def queryset(self, request, queryset):
        return queryset  # the changelist queries the chosen shards (ShardedModelAdmin.shards_to_list)

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "All shards",
        }
        for alias, label in self.lookup_choices:
            yield {
                "selected": self.value() == alias,
                "query_string": changelist.get_query_string({self.parameter_name: alias}),
                "display": label,
            }


class ShardedModelAdmin(admin.ModelAdmin):
    """Base admin for sharded models."""

    list_filter: tuple = (ShardFilter,)
    search_help_text = "A user id or its beginning, or the id of a row."
    routable_id_fields: tuple[str, ...] = ("id",)
    # Rows read from one shard for a list, at most: the count shows "1000+" beyond it and the
    # listing pages through the newest rows only (narrow it with a filter or a search).
    shard_row_cap = 1000
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would query every shard per filter choice

    def get_changelist(self, request, **kwargs):
        return ShardedChangeList

    def get_queryset(self, request):
        # Not routed: the changelist names each shard (.using) and detail pages route by id.
        return super().get_queryset(request)

    # --- which shards a request concerns -----------------------------------------------

    def shards_to_list(self, request) -> list[str]:
        shard = request.GET.get("shard")
        if shard in shard_aliases():
            return [shard]
        for field in self.routable_id_fields:
            routable = parse_routable_id(request.GET.get(field, ""))
            if routable is not None:
                return [shard_for_id(routable)]
        user_id = request.GET.get("user_id", "")
        if USER_ID_PATTERN.match(user_id):
            return [shard_for_user(user_id)]
        return shard_aliases()

    def object_shard(self, object_id: str) -> str | None:
        routable = parse_routable_id(object_id)
        return shard_for_id(routable) if routable is not None else None

    # --- search ----------------------------------------------------------------------------

    def search_condition(self, term: str) -> Q | None:
        """What a search term that is not a row id matches (None: nothing)."""
        return Q(user_id__startswith=term) if USER_ID_PATTERN.match(term) else None

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        routable = parse_routable_id(term)
        if routable is not None:
            # A row id, or a user id that happens to be a UUIDv7 (its bits name no shard):
            # index lookups on every shard.
            condition = Q(user_id=term)
            for field in self.routable_id_fields:
                condition |= Q(**{field: routable})
            return queryset.filter(condition), False
        condition = self.search_condition(term)
        return (queryset.none() if condition is None else queryset.filter(condition)), False

    def prepare_rows(self, request, rows: Sequence[Model]) -> None:
        """Called with a changelist page's rows before it renders: load what its columns
        show from elsewhere, one query per shard (see NotificationAdmin)."""

    # --- actions ---------------------------------------------------------------------------

    def querysets_by_shard(self, request, queryset: QuerySet) -> list[QuerySet]:
        """An action's selection as one routed queryset per shard holding selected rows."""
        if request.POST.get("select_across") == "1":
            return [queryset.using(alias) for alias in self.shards_to_list(request)]
        by_shard: dict[str, list[str]] = defaultdict(list)
        for object_id in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            alias = self.object_shard(object_id)
            if alias is not None:
                by_shard[alias].append(object_id)
        return [queryset.using(alias).filter(pk__in=ids) for alias, ids in by_shard.items()]

    @admin.action(permissions=["delete"], description="Delete selected %(verbose_name_plural)s")
    def delete_selected(self, request, queryset):
        """Django's bulk delete, per shard: confirm with the same page, then delete each
        shard's rows in a transaction on that shard through ``delete_queryset``."""
        selected = rows_by_shard(row for group in self.querysets_by_shard(request, queryset) for row in group)
        deletable: list = []
        model_count: Counter = Counter()
        perms_needed: set = set()
        protected: list = []
        for alias, rows in selected.items():
            with pinned_shard(alias):
                found, counts, lacking, blocked = self.get_deleted_objects(rows, request)
            deletable.extend(found)
            model_count.update(dict(counts))
            perms_needed |= set(lacking)
            protected.extend(blocked)
        count = sum(len(rows) for rows in selected.values())
        if request.POST.get("post") and not protected:
            if perms_needed:
                raise PermissionDenied
            for alias, rows in selected.items():
                with pinned_shard(alias), transaction.atomic(using=alias):
                    self.log_deletions(request, rows)
                    self.delete_queryset(request, self.model._default_manager.using(alias).filter(pk__in=[r.pk for r in rows]))
            if count:
                self.message_user(
                    request, f"Successfully deleted {count} {model_ngettext(self.opts, count)}.", messages.SUCCESS
                )
            return None
        objects_name = model_ngettext(self.opts, count)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Cannot delete {objects_name}" if perms_needed or protected else "Delete multiple objects",
            "subtitle": None,
            "objects_name": str(objects_name),
            "deletable_objects": [deletable],
            "model_count": dict(model_count).items(),
            "queryset": [row for rows in selected.values() for row in rows],
            "perms_lacking": perms_needed,
            "protected": protected,
            "opts": self.opts,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            [
                f"admin/{self.opts.app_label}/{self.opts.model_name}/delete_selected_confirmation.html",
                f"admin/{self.opts.app_label}/delete_selected_confirmation.html",
                "admin/delete_selected_confirmation.html",
            ],
            context,
        )

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions and self.has_delete_permission(request):
            # Replace the site-wide action (one database) with the per-shard one above.
            actions["delete_selected"] = self.get_action("delete_selected")
        return actions

    # --- detail pages and writes -----------------------------------------------------------

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

    routable_id_fields = ()

    def object_shard(self, object_id: str) -> str | None:
        return shard_for_user(object_id) if USER_ID_PATTERN.match(object_id) else None
