"""The service plugin's periodic work for the core scheduler (`scheduled_jobs` hook): the SLA
check every few minutes, the same work as `crm ticket check` (SLA clocks and broken promises,
then escalations and group-complaint detection), at the scheduler's time."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from crm.core.schedule import Schedule, ScheduledJob
from crm.plugins.service.escalation import run_escalations
from crm.plugins.service.rules import CHECK_FINDINGS
from crm.plugins.service.sla import check_clocks

SLA_CHECK_MINUTES = 5  # the tightest first-response target is 5 minutes


def scheduled_jobs(session: Session, now: dt.datetime) -> list[ScheduledJob]:
    return [
        ScheduledJob(
            "sla_check",
            "服务时限检查与升级",
            Schedule.every(SLA_CHECK_MINUTES),
            "ticket.handle",
            check_sla,
        )
    ]


def check_sla(session: Session, now: dt.datetime) -> str | None:
    """Run the SLA clocks, broken promises, escalations and group complaints as of `now`;
    one line naming what was found, or None when nothing was."""
    found = check_clocks(session, now)
    found |= run_escalations(session, now)
    parts = [
        f"{title} {len(found[key])} 件（{'、'.join(found[key])}）"
        for key, title in CHECK_FINDINGS.items()
        if found.get(key)
    ]
    return "；".join(parts) or None
