"""Time arithmetic done by the database, written once for SQLite and PostgreSQL, so reports
group and measure in SQL instead of loading rows into Python."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import ColumnElement, extract, func, literal_column
from sqlalchemy.orm import Session

from crm.core.clock import local_zone
from crm.core.errors import CrmError
from crm.core.models import utcnow


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def local_format(session: Session, column, pattern: str) -> ColumnElement:
    """A stored UTC time in the business zone, formatted by the database: pattern "month"
    gives 'YYYY-MM', "day" gives 'YYYY-MM-DD'.

    Literals, not bound parameters: PostgreSQL sees two bound copies of one expression in
    SELECT and GROUP BY as different expressions and refuses the query.
    """
    postgres, sqlite = {"month": ("YYYY-MM", "%Y-%m"), "day": ("YYYY-MM-DD", "%Y-%m-%d")}[pattern]
    zone = local_zone().key
    if _dialect(session) == "postgresql":
        if not re.fullmatch(r"[A-Za-z0-9_/+\-]+", zone):
            raise CrmError(f"时区名称“{zone}”不合规：请使用如 Asia/Shanghai 的名称。")
        local = func.timezone(literal_column(f"'{zone}'"), column)
        return func.to_char(local, literal_column(f"'{postgres}'"))
    # SQLite has no time zones: shift by the zone's present offset (exact for zones without
    # daylight saving, such as Asia/Shanghai).
    offset = utcnow().astimezone(local_zone()).utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds() // 60)
    return func.strftime(
        literal_column(f"'{sqlite}'"), column, literal_column(f"'{minutes:+d} minutes'")
    )


def month_of(session: Session, column) -> ColumnElement:
    """'YYYY-MM' of a stored UTC time in the business zone, computed by the database."""
    return local_format(session, column, "month")


def day_of(session: Session, column) -> ColumnElement:
    """'YYYY-MM-DD' of a stored UTC time in the business zone, computed by the database."""
    return local_format(session, column, "day")


def minutes_between(session: Session, start, end) -> ColumnElement:
    """Minutes from one stored time to another."""
    if _dialect(session) == "postgresql":
        return extract("epoch", end - start) / 60.0
    return (func.julianday(end) - func.julianday(start)) * 1440.0
