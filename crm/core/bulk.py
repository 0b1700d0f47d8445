"""Bulk writes for large generated loads (the demo and its plugins' sample data).

On SQLite the values are put in their stored form here and handed straight to the driver:
SQLAlchemy's per-value bind processing of a million time stamps costs more than inserting the
rows. Elsewhere a plain Core executemany in batches.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from operator import itemgetter

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

BATCH = 5000


def write_rows(session: Session, table: Table, rows: list[dict]) -> None:
    """Insert `rows` (dicts with the same keys) into `table`, in batches."""
    if not rows:
        return
    if session.get_bind().dialect.name != "sqlite":
        for start in range(0, len(rows), BATCH):
            session.execute(insert(table), rows[start : start + BATCH])
        return
    names = list(rows[0])
    statement = (
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    )
    converted = [
        (i, convert)
        for i, convert in enumerate(_stored_form(table.c[name].type) for name in names)
        if convert is not None
    ]
    pick = itemgetter(*names)
    connection = session.connection()
    for start in range(0, len(rows), BATCH):
        values = []
        for row in rows[start : start + BATCH]:
            record = list(pick(row))
            for i, convert in converted:
                if record[i] is not None:
                    record[i] = convert(record[i])
            values.append(tuple(record))
        connection.exec_driver_sql(statement, values)


def _utc_text(moment: dt.datetime) -> str:
    """`2026-04-28 01:00:00.000000`: the UTC time as SQLAlchemy stores it in SQLite."""
    if moment.tzinfo is not dt.UTC:
        moment = moment.astimezone(dt.UTC)
    return moment.isoformat(" ", "microseconds")[:26]


def _stored_form(column_type) -> Callable | None:
    """How SQLAlchemy stores a value of this type in SQLite (None: as it is)."""
    from sqlalchemy import JSON, Date, Numeric

    from crm.core.models import UTCDateTime

    if isinstance(column_type, UTCDateTime):
        return _utc_text
    if isinstance(column_type, Date):
        return dt.date.isoformat
    if isinstance(column_type, JSON):
        return json.dumps
    if isinstance(column_type, Numeric):
        return float
    return None
