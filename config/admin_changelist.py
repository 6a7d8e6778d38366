"""A changelist over every shard: per-shard queries, merged pages, bounded counts."""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import InvalidPage, Paginator
from django.db.models import F, Model, OrderBy


def ordering_key(model: type[Model], ordering: Sequence[Any]) -> Callable[[Model], Any]:
    """A sort key reproducing the database's ORDER BY for plain field orderings, for merging
    rows that each shard already returned in that order. NULLs sort as PostgreSQL sorts
    them: last ascending, first descending. Text compares by code point, as the databases'
    C collation does (under another collation a text ordering merges slightly out of order,
    but no row is lost)."""
    parts: list[tuple[str, bool]] = []
    for item in ordering:
        if isinstance(item, str):
            descending, name = item.startswith("-"), item.lstrip("-")
        elif isinstance(item, OrderBy) and isinstance(item.expression, F):
            descending, name = item.descending, item.expression.name
        else:
            continue  # an expression the rows do not carry; the orderings before it still hold
        if name == "pk":
            parts.append((model._meta.pk.attname, descending))
            continue
        try:
            parts.append((model._meta.get_field(name).attname, descending))
        except FieldDoesNotExist:
            continue

    def compare(left: Model, right: Model) -> int:
        for attname, descending in parts:
            a, b = getattr(left, attname), getattr(right, attname)
            if a == b:
                continue
            if a is None or b is None:
                result = 1 if a is None else -1
            else:
                result = -1 if a < b else 1
            return -result if descending else result
        return 0

    return functools.cmp_to_key(compare)


class ShardedChangeList(ChangeList):
    """Runs the changelist's own query (filters, search, ordering) on each listed shard.

    A page needs at most ``page * per_page`` rows from any one shard, so each shard returns
    that many in order and the merge keeps the page's slice. Each shard's count stops at the
    admin's ``shard_row_cap``; when one is capped, the count reads "N+" and only the newest
    ``shard_row_cap`` rows (which every shard's first rows are sure to contain) are paged.
    """

    count_capped = False

    def get_results(self, request):
        model_admin = self.model_admin
        aliases = model_admin.shards_to_list(request)
        cap = model_admin.shard_row_cap
        counts = {alias: self.queryset.using(alias).order_by()[: cap + 1].count() for alias in aliases}
        capped = any(count > cap for count in counts.values())
        result_count = sum(min(count, cap) for count in counts.values())
        pageable = cap if capped else result_count
        paginator = Paginator(range(pageable), self.list_per_page)
        try:
            page = paginator.page(self.page_num)
        except InvalidPage:
            raise IncorrectLookupParameters from None
        wanted = page.end_index()
        ordered = [
            list(self.queryset.using(alias)[:wanted]) for alias in aliases if counts[alias] and wanted
        ]
        key = ordering_key(self.model, self.queryset.query.order_by)
        rows = list(islice(heapq.merge(*ordered, key=key), page.start_index() - 1 if wanted else 0, wanted))
        model_admin.prepare_rows(request, rows)

        self.result_count = result_count
        self.count_capped = capped
        self.show_full_result_count = False
        self.show_admin_actions = True
        # Unfiltered, the count is the total; filtered, the page offers "Show all" instead of a
        # second (every-shard) count of the total.
        self.full_result_count = None if self.query or self.get_filters_params() else result_count
        self.result_list = rows
        self.can_show_all = False  # "show all" would read every row of every shard
        self.multi_page = pageable > self.list_per_page
        self.paginator = paginator
