"""Per-household purchase histories for the purchase models, summarised by the database.

The conventions are those of the CDNOW studies (and of `lifetimes`): several purchases on one
day are one purchase; x counts the purchase days after the first; t_x and T run from the first
purchase to the last one and to the end of calibration; the mean repeat spend averages the
days after the first (the first purchase's value is left out, as the Gamma-Gamma model asks).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
from sqlalchemy import Date, Float, Integer, case, cast, func, literal, select
from sqlalchemy.orm import Session

from crm.core.errors import CrmError
from crm.core.models import Purchase

# Ids per IN list: under SQLite's oldest limit of 999 bound parameters per statement (PostgreSQL
# allows 65535), and small enough for the household_id index to serve each list.
ID_CHUNK = 900

# Days per unit; a month is the mean Gregorian month, so months stay comparable across years.
UNITS = {"days": 1.0, "weeks": 7.0, "months": 365.2425 / 12}


class PurchaseSummary(NamedTuple):
    """One entry per household with a purchase in the window, ordered by household id."""

    household_id: np.ndarray
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    mean_repeat_spend: np.ndarray  # 0 where x = 0


def _days(session: Session, start, end):
    if session.get_bind().dialect.name == "postgresql":
        return end - start  # date - date is a whole number of days
    return cast(func.julianday(end) - func.julianday(start), Integer)


def purchase_summary(
    session: Session,
    calibration_end: dt.date,
    unit: str = "weeks",
    since: dt.date | None = None,
    household_ids: Iterable[int] | None = None,
) -> PurchaseSummary:
    """x, t_x, T (in `unit`) and mean repeat spend per household, from the purchases up to
    and including `calibration_end`.

    `since` keeps the cohort of households whose first purchase is on or after that date:
    the models take the first purchase as the start of the relationship, so older customers
    must not re-enter with a truncated history.

    `household_ids` limits the summary to those households (an empty list gives an empty
    summary); long lists are read ID_CHUNK ids at a time through the household_id index.
    """
    if unit not in UNITS:
        raise CrmError(f"不认识的时间单位“{unit}”：可用 {'、'.join(UNITS)}。")
    if since is not None and since > calibration_end:
        raise CrmError("起始日期晚于校准截止日期：请把起始日期设在截止日期之前。")
    if household_ids is None:
        rows = session.execute(_summary_query(session, calibration_end, since)).all()
    else:
        # Sorted chunks come back in household order, so the parts join up already sorted.
        ids = sorted({int(i) for i in household_ids})
        rows = []
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            rows += session.execute(_summary_query(session, calibration_end, since, chunk)).all()
    household_id, x, t_x_days, T_days, repeat_spent = (
        np.array(column) for column in (zip(*rows, strict=True) if rows else [()] * 5)
    )
    household_id = household_id.astype(np.int64)
    x = x.astype(float)
    scale = UNITS[unit]
    mean = np.divide(repeat_spent.astype(float), x, out=np.zeros(x.size), where=x > 0)
    return PurchaseSummary(
        household_id, x, t_x_days.astype(float) / scale, T_days.astype(float) / scale, mean
    )


def _summary_query(
    session: Session,
    calibration_end: dt.date,
    since: dt.date | None,
    household_ids: list[int] | None = None,
):
    p = Purchase.__table__.c
    days = (
        select(
            p.household_id,
            p.purchase_date.label("day"),
            func.sum(p.amount).label("spent"),
            func.min(p.purchase_date).over(partition_by=p.household_id).label("first"),
        )
        .where(p.purchase_date <= calibration_end)
        .group_by(p.household_id, p.purchase_date)
    )
    if household_ids is not None:
        days = days.where(p.household_id.in_(household_ids))
    days = days.subquery()
    end = literal(calibration_end, Date)
    query = (
        select(
            days.c.household_id,
            func.count() - 1,
            _days(session, days.c.first, func.max(days.c.day)),
            _days(session, days.c.first, end),
            cast(
                func.coalesce(func.sum(case((days.c.day > days.c.first, days.c.spent))), 0),
                Float,
            ),
        )
        .group_by(days.c.household_id, days.c.first)
        .order_by(days.c.household_id)
    )
    if since is not None:
        query = query.where(days.c.first >= since)
    return query
