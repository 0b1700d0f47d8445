"""The business time zone: times are stored in UTC and read and written in this zone.

The teams work in China, while servers often run in UTC, so the default is Asia/Shanghai
rather than the machine's zone; CRM_TIMEZONE changes it.
"""

from __future__ import annotations

import calendar
import datetime as dt
import os
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm.core.errors import CrmError

DEFAULT_ZONE = "Asia/Shanghai"


@cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CrmError(
            f"不认识的时区 CRM_TIMEZONE={name!r}：请使用如 Asia/Shanghai 的名称。"
        ) from None


def local_zone() -> ZoneInfo:
    return _zone(os.environ.get("CRM_TIMEZONE") or DEFAULT_ZONE)


def to_local(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(local_zone())


def as_local(naive: dt.datetime) -> dt.datetime:
    """A wall-clock time without an offset, read in the business zone."""
    return naive.replace(tzinfo=local_zone())


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later (earlier when negative); the 31st falls back to the
    month's last day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(
        year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1])
    )


def day_start(day: dt.date) -> dt.datetime:
    """The first moment of a calendar day in the business zone (times are stored in UTC)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=local_zone())


def local_today(now: dt.datetime | None = None) -> dt.date:
    """Today's date in the business zone (of `now` when given)."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(local_zone()).date()


def parse_local_minute(text: str, what: str = "时间") -> dt.datetime:
    """`2026-12-02 08:05` (also 2026/12/02 8:05 or with a T) in the business zone, as an aware
    UTC datetime; anything else is one sentence."""
    cleaned = text.strip().replace("/", "-").replace("T", " ")
    try:
        moment = dt.datetime.strptime(cleaned, "%Y-%m-%d %H:%M")
    except ValueError:
        raise CrmError(f"看不懂{what}“{text}”：请写成 2026-12-02 08:05（本地时间）。") from None
    return as_local(moment).astimezone(dt.UTC)


def when_done(
    at: dt.datetime | None,
    now: dt.datetime,
    earliest: dt.datetime | None = None,
    earliest_what: str = "",
) -> dt.datetime:
    """When something recorded now actually happened: `at` if given (a call taken at 08:05 and
    typed in at 08:40), else now. Never in the future, never before `earliest` (the thing it
    belongs to did not exist yet)."""
    if at is None:
        return now
    if at > now:
        raise CrmError(
            f"发生时间 {to_local(at):%Y-%m-%d %H:%M} 晚于现在（{to_local(now):%Y-%m-%d %H:%M}）："
            "只能登记已经发生的事。"
        )
    if earliest is not None and at < earliest:
        raise CrmError(
            f"发生时间 {to_local(at):%Y-%m-%d %H:%M} 早于{earliest_what}"
            f"（{to_local(earliest):%Y-%m-%d %H:%M}）：请核对时间。"
        )
    return at
