"""One page of a listing: the rows shown, how many rows match in all and where the page starts,
so every list can say "显示 1–100 条，共 2,345 条" (`crm.core.cliutil.emit` prints it).

A `Page` is a list of the rows shown: callers that only want the rows keep treating it as one.
SQLAlchemy is imported inside the functions that query, so a command module may import this
one at start-up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any


class Page(list):
    """The rows of one page, with `total` (rows matching the filters), `offset` (rows skipped
    before this page) and `limit` (the most a page holds; None: no limit)."""

    def __init__(
        self,
        rows: Iterable = (),
        total: int | None = None,
        offset: int = 0,
        limit: int | None = None,
    ):
        super().__init__(rows)
        self.offset = offset
        self.limit = limit
        self.total = offset + len(self) if total is None else total

    def map(self, func: Callable[[Any], Any]) -> Page:
        """The same page with each row turned into `func(row)`."""
        return Page(map(func, self), self.total, self.offset, self.limit)

    @property
    def complete(self) -> bool:
        """Whether this page holds every matching row."""
        return self.offset == 0 and len(self) >= self.total


def window(rows: Iterable, limit: int | None = None, offset: int = 0) -> Page:
    """A page of rows already in memory (a list computed in Python)."""
    rows = list(rows)
    end = None if limit is None else offset + limit
    return Page(rows[offset:end], len(rows), offset, limit)


def fetch(session, query, limit: int | None = None, offset: int = 0, scalars: bool = False):
    """Run `query` for one page (`offset`, `limit`) and count the rows it matches in all.

    The count is a second query only when the page is full or past the end: a page with room
    left holds the last rows, so the total is known from it."""
    paged = query.offset(offset or None).limit(limit)
    result = session.scalars(paged) if scalars else session.execute(paged)
    rows = result.all()
    if (limit is None or len(rows) < limit) and (rows or not offset):
        return Page(rows, offset + len(rows), offset, limit)
    return Page(rows, count(session, query), offset, limit)


def count(session, query) -> int:
    """How many rows `query` returns, without its order, limit and offset."""
    from sqlalchemy import func, select

    inner = query.order_by(None).limit(None).offset(None)
    return session.scalar(select(func.count()).select_from(inner.subquery()))


def between(column, since: dt.datetime | None, until: dt.datetime | None) -> list:
    """Conditions keeping `column` in [since, until) (either bound may be None)."""
    conditions = []
    if since is not None:
        conditions.append(column >= since)
    if until is not None:
        conditions.append(column < until)
    return conditions


def between_days(column, since: dt.datetime | None, until: dt.datetime | None) -> list:
    """Conditions for a DATE column from the aware bounds of `--since/--until`: the local
    days they start (until is the day after the last one, as `day_bound(end=True)` gives)."""
    from crm.core.clock import to_local

    conditions = []
    if since is not None:
        conditions.append(column >= to_local(since).date())
    if until is not None:
        conditions.append(column < to_local(until).date())
    return conditions
