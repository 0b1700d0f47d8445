"""Schedules of the periodic work, and the description of one job, as plain values.

A plugin describes each periodic job it wants run with a `ScheduledJob` (returned by the
`scheduled_jobs` hook) and a default `Schedule`; the core keeps the jobs in APScheduler
(crm.core.scheduler). A schedule reads and writes as short text, which is also how a changed
one is kept in the settings table: "5m" (an interval: m, h, d, w), "07:00" (every day at that
local time) or a crontab line such as "0 7 * * 1-5". Every time is in the business zone.

APScheduler is imported inside the functions that build triggers, so `crm --help` stays fast.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crm.core.clock import local_zone, to_local
from crm.core.errors import CrmError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

EVERY, DAILY, CRON, ONCE = "every", "daily", "cron", "once"
# Intervals without a start of their own count from a Monday midnight in the business zone, so
# a five-minute job runs at :00, :05 … and the trigger built again on the next sync is the same.
ANCHOR = dt.datetime(2000, 1, 3)
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
WEEKDAY_WORDS = "日一二三四五六"
UNITS = ((10080, "w", "周"), (1440, "d", "天"), (60, "h", "小时"))
SCHEDULE_HELP = (
    "请写间隔（如 5m、2h、1d）、每天的时刻（如 07:00）或 5 段 cron 表达式（如“0 7 * * 1-5”）"
)


def parse_every(text: str) -> int:
    """Minutes in an interval such as 30m, 12h, 7d, 2w (or 30分钟, 12小时, 7天, 2周)."""
    found = re.fullmatch(r"\s*(\d+)\s*(m|min|分钟|h|小时|d|天|w|周)\s*", text or "", re.IGNORECASE)
    if not found or int(found.group(1)) < 1:
        raise CrmError(f"间隔“{text}”无效：请写成 30m、12h、7d 或 2w（分钟、小时、天、周）。")
    unit = found.group(2).lower()
    per = {"m": 1, "min": 1, "分钟": 1, "h": 60, "小时": 60, "d": 1440, "天": 1440}
    return int(found.group(1)) * per.get(unit, 10080)


def _crontab_weekdays(field_text: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday) as weekday names: APScheduler 3 reads
    numbers with 0 = Monday, so "0 9 * * 1" would otherwise fire on Tuesdays."""
    if not re.search(r"\d", field_text):
        return field_text
    return ",".join(WEEKDAY_NAMES[day] for day in _weekday_numbers(field_text))


def _weekday_numbers(field_text: str) -> list[int]:
    """The days (0 = Sunday … 6) a numeric crontab day-of-week field names."""
    days: list[int] = []
    for item in field_text.split(","):
        base, _, step = item.partition("/")
        if not re.fullmatch(r"\*|\d+(-\d+)?", base) or (step and not step.isdigit()):
            raise ValueError(f"unsupported day of week {item!r}")
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            first, last = (int(part) for part in base.split("-"))
        else:
            first = int(base)
            last = 6 if step else first
        if not 0 <= first <= last <= 7 or (step and int(step) < 1):
            raise ValueError(f"day of week out of range {item!r}")
        days.extend(range(first, last + 1, int(step or 1)))
    return sorted({day % 7 for day in days})


def crontab_trigger(expression: str):
    """An APScheduler CronTrigger for a standard 5-field crontab line, in the business zone."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError("a crontab line has five fields")
    minute, hour, day, month, weekdays = fields
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month,
        day_of_week=_crontab_weekdays(weekdays), timezone=local_zone(),
    )  # fmt: skip


def _interval_words(minutes: int) -> str:
    for size, _code, word in UNITS:
        if minutes % size == 0:
            return f"每 {minutes // size} {word}"
    return f"每 {minutes} 分钟"


def _weekday_words(field_text: str) -> str | None:
    """Weekdays in words: 1-5 -> 一至五, 1,3,5 -> 一、三、五; None for anything less plain."""
    if not re.fullmatch(r"\d(-\d)?(,\d(-\d)?)*", field_text):
        return None
    try:
        days = _weekday_numbers(field_text)
    except ValueError:
        return None
    # Monday first, as the teams read a week; Sunday (0) last.
    days = sorted(days, key=lambda day: (day == 0, day))
    order = [1, 2, 3, 4, 5, 6, 0]
    positions = [order.index(day) for day in days]
    if len(days) > 2 and positions == list(range(positions[0], positions[-1] + 1)):
        return f"{WEEKDAY_WORDS[days[0]]}至{WEEKDAY_WORDS[days[-1]]}"
    return "、".join(WEEKDAY_WORDS[day] for day in days)


def _cron_words(line: str) -> str:
    minute, hour, day, month, weekdays = line.split()
    if minute.isdigit() and hour.isdigit():
        at = f"{int(hour):02d}:{int(minute):02d}"
        if day == "*" and month == "*":
            if weekdays == "*":
                return f"每天 {at}"
            names = _weekday_words(weekdays)
            if names:
                return f"每周{names} {at}"
        if day.isdigit() and month == "*" and weekdays == "*":
            return f"每月 {int(day)} 日 {at}"
    if minute == hour == day == month == weekdays == "*":
        return "每分钟"
    if minute.isdigit() and hour == day == month == weekdays == "*":
        return f"每小时第 {int(minute)} 分"
    return f"按 cron 规则“{line}”（分 时 日 月 周）"


@dataclass(frozen=True)
class Schedule:
    """When a job runs: every N minutes, every day at a local time, a crontab line, or once."""

    kind: str
    minutes: int | None = None
    # An interval's first run (later runs follow at whole intervals); None: from ANCHOR.
    start: dt.datetime | None = None
    at: dt.time | None = None
    cron: str | None = None
    when: dt.datetime | None = None

    @classmethod
    def every(cls, minutes: int, start: dt.datetime | None = None) -> Schedule:
        if minutes < 1:
            raise CrmError("间隔至少为 1 分钟。")
        return cls(EVERY, minutes=minutes, start=start)

    @classmethod
    def daily(cls, hour: int, minute: int = 0) -> Schedule:
        if not (0 <= hour <= 23 and 0 <= minute <= 59):
            raise CrmError(f"时刻 {hour}:{minute:02d} 无效：小时为 0–23，分钟为 0–59。")
        return cls(DAILY, at=dt.time(hour, minute))

    @classmethod
    def crontab(cls, line: str) -> Schedule:
        line = " ".join(line.split())
        try:
            crontab_trigger(line)
        except ValueError:
            raise CrmError(
                f"cron 表达式“{line}”无效：请写 5 段（分 时 日 月 周），如“0 9 * * 1”表示每周一 9:00。"
            ) from None
        return cls(CRON, cron=line)

    @classmethod
    def once(cls, moment: dt.datetime) -> Schedule:
        return cls(ONCE, when=moment)

    def text(self) -> str:
        """The short form a person types and the settings table keeps."""
        if self.kind == EVERY:
            for size, code, _word in UNITS:
                if self.minutes % size == 0:
                    return f"{self.minutes // size}{code}"
            return f"{self.minutes}m"
        if self.kind == DAILY:
            return f"{self.at:%H:%M}"
        if self.kind == CRON:
            return self.cron
        return f"{to_local(self.when):%Y-%m-%d %H:%M}"

    def words(self) -> str:
        """The schedule in words, local time: 每 5 分钟, 每天 07:00, 每周一 09:30 …"""
        if self.kind == EVERY:
            return _interval_words(self.minutes)
        if self.kind == DAILY:
            return f"每天 {self.at:%H:%M}"
        if self.kind == CRON:
            return _cron_words(self.cron)
        return f"一次：{to_local(self.when):%Y-%m-%d %H:%M}"

    def trigger(self):
        """The APScheduler trigger, in the business zone; built alike every time (so a sync
        can tell a changed schedule by comparing triggers)."""
        zone = local_zone()
        if self.kind == EVERY:
            from apscheduler.triggers.interval import IntervalTrigger

            start = to_local(self.start) if self.start else ANCHOR.replace(tzinfo=zone)
            return IntervalTrigger(minutes=self.minutes, start_date=start, timezone=zone)
        if self.kind == DAILY:
            from apscheduler.triggers.cron import CronTrigger

            return CronTrigger(hour=self.at.hour, minute=self.at.minute, timezone=zone)
        if self.kind == CRON:
            return crontab_trigger(self.cron)
        from apscheduler.triggers.date import DateTrigger

        return DateTrigger(run_date=self.when, timezone=zone)


def parse_schedule(text: str) -> Schedule:
    """A schedule as a person writes it: "5m", "07:00" or "0 7 * * 1-5"."""
    text = (text or "").strip()
    daily = re.fullmatch(r"(\d{1,2})[:：](\d{2})", text)
    if daily:
        return Schedule.daily(int(daily.group(1)), int(daily.group(2)))
    if len(text.split()) == 5:
        return Schedule.crontab(text)
    if re.fullmatch(r"\d+\s*\D+", text):
        return Schedule.every(parse_every(text))
    raise CrmError(f"排期“{text}”无效：{SCHEDULE_HELP}。")


@dataclass(frozen=True)
class ScheduledJob:
    """One piece of periodic work a plugin (or the core) wants run by the scheduler.

    `run(session, now)` does the work as of `now` and returns one line for the log (None when
    there is nothing to report). It runs in a transaction the scheduler commits, unless
    `commits` says it owns its transactions (it then gets a session outside any). A
    `configurable` job's schedule can be changed with `crm scheduler set` (setting
    scheduler.<id>); otherwise it comes from the plugin's own data (a campaign's schedule)."""

    id: str
    name: str
    schedule: Schedule
    permission: str
    run: Callable[[Session, dt.datetime], str | None]
    configurable: bool = True
    commits: bool = False
