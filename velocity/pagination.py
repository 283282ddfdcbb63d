"""The API's page: DRF's limit/offset page, with the count taken from the page itself when the page says it.

``LimitOffsetPagination`` runs ``SELECT COUNT(*)`` before every page. Fetching one row more than the limit
tells whether anything follows: when nothing does (a user's own list, nearly always under one page), the count
is the offset plus the rows fetched and the second query is not sent (docs/benchmarks.md, *REST under load,
third round*). The answer is the same JSON either way.
"""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

# PostgreSQL's LIMIT and OFFSET are bigints, and a client may ask for any number: the fetch stops there instead of
# failing (DRF's own page fails so once there is a row to page).
MAX_SQL_INT = 2**63 - 1


def known_count(offset: int, limit: int, fetched: int) -> int | None:
    """The total, when a fetch of ``limit + 1`` rows from ``offset`` settles it (None: count the rows)."""
    if fetched > limit or (fetched == 0 and offset > 0):
        return None
    return offset + fetched


class CountingLimitOffsetPagination(LimitOffsetPagination):
    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        self.request = request
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None
        self.offset = self.get_offset(request)
        stop = min(self.offset + self.limit + 1, MAX_SQL_INT)
        rows = list(queryset[self.offset : stop]) if self.offset < MAX_SQL_INT else []
        count = known_count(self.offset, self.limit, len(rows))
        self.count = self.get_count(queryset) if count is None else count
        if self.count > self.limit and self.template is not None:
            self.display_page_controls = True
        return rows[: self.limit]
