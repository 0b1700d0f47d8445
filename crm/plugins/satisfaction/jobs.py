"""The satisfaction plugin's periodic work for the core scheduler (`scheduled_jobs` hook):
early-warning detection every morning, the same work as `crm satisfaction warnings --detect`,
before coordination takes the new feedback."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from crm.core.schedule import Schedule, ScheduledJob
from crm.plugins.satisfaction.vocab import KINDS
from crm.plugins.satisfaction.warnings import detect_warnings

WARNINGS_AT = (7, 0)  # local time; coordination follows at 07:30


def scheduled_jobs(session: Session, now: dt.datetime) -> list[ScheduledJob]:
    return [
        ScheduledJob(
            "warnings",
            "客情预警检测",
            Schedule.daily(*WARNINGS_AT),
            "satisfaction.record",
            detect,
        )
    ]


def detect(session: Session, now: dt.datetime) -> str:
    """Detect early warnings as of `now` with the default thresholds; one line with the count
    of new warnings per kind."""
    new = detect_warnings(session, now=now)
    counts: dict[str, int] = {}
    for record in new:
        counts[record.kind] = counts.get(record.kind, 0) + 1
    detail = "、".join(f"{KINDS.get(kind, kind)} {count}" for kind, count in counts.items())
    return f"新增客情预警 {len(new)} 条" + (f"（{detail}）" if detail else "")
