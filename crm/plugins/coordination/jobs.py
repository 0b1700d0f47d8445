"""The coordination plugin's periodic work for the core scheduler (`scheduled_jobs` hook): one
coordination cycle every morning after the early warnings, the same work as `crm coordinate run`
(run_cycle owns its transactions, so the job says it commits)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from crm.core.schedule import Schedule, ScheduledJob
from crm.plugins.coordination.cycle import run_cycle

CYCLE_AT = (7, 30)  # local time: half an hour after the early-warning detection


def scheduled_jobs(session: Session, now: dt.datetime) -> list[ScheduledJob]:
    return [
        ScheduledJob(
            "coordination",
            "协调调度：评估反馈并派工",
            Schedule.daily(*CYCLE_AT),
            "coordination.run",
            cycle,
            commits=True,
        )
    ]


def cycle(session: Session, now: dt.datetime) -> str:
    """One coordination cycle as of `now`; one line with what each step did."""
    return run_cycle(session, now=now).summary()
