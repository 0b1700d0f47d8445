"""The campaigns plugin's periodic work for the core scheduler (`scheduled_jobs` hook): the
daily lifecycle plan ("lifecycle") and one job per active scheduled campaign
("campaign:<code>"), each calling the library functions the `crm campaign` commands use."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.core.clock import local_today
from crm.core.schedule import Schedule, ScheduledJob
from crm.core.scheduler import MISFIRE_GRACE_SECONDS
from crm.plugins.campaigns.campaigns import campaign_schedule, run_campaign
from crm.plugins.campaigns.lifecycle import plan_touchpoints
from crm.plugins.campaigns.models import Campaign, CampaignRun

CAMPAIGN_JOB_PREFIX = "campaign:"
LIFECYCLE_HOUR = 6  # plan touchpoints before the teams start work
LIFECYCLE_HORIZON_DAYS = 30


def scheduled_jobs(session: Session, now: dt.datetime) -> list[ScheduledJob]:
    jobs = [
        ScheduledJob(
            "lifecycle",
            "生命周期触点安排",
            Schedule.daily(LIFECYCLE_HOUR),
            "campaign.manage",
            plan_lifecycle,
        )
    ]
    for campaign in wanted_campaigns(session, now):
        jobs.append(
            ScheduledJob(
                f"{CAMPAIGN_JOB_PREFIX}{campaign.code}",
                campaign.name,
                campaign_schedule(campaign),
                "campaign.manage",
                _campaign_runner(campaign.code),
                # The campaign's own schedule (`crm campaign create --cron …`), not a setting;
                # a run commits batch by batch.
                configurable=False,
                commits=True,
            )
        )
    return jobs


def wanted_campaigns(session: Session, now: dt.datetime) -> list[Campaign]:
    """Active scheduled campaigns; a one-off whose time came and that has run since, or whose
    time is past the scheduler's grace, is done."""
    wanted = []
    for campaign in session.scalars(
        select(Campaign)
        .where(Campaign.active.is_(True), Campaign.schedule_kind.is_not(None))
        .order_by(Campaign.code)
    ):
        if campaign.schedule_kind == "once":
            ran = session.scalar(
                select(CampaignRun.id).where(
                    CampaignRun.campaign_id == campaign.id,
                    CampaignRun.started_at >= campaign.run_at,
                    CampaignRun.finished_at.is_not(None),
                )
            )
            too_late = campaign.run_at < now - dt.timedelta(seconds=MISFIRE_GRACE_SECONDS)
            if ran is not None or too_late:
                continue
        if campaign_schedule(campaign) is not None:
            wanted.append(campaign)
    return wanted


def plan_lifecycle(session: Session, now: dt.datetime) -> str:
    """Plan the lifecycle touchpoints due in the next LIFECYCLE_HORIZON_DAYS days."""
    until = local_today(now) + dt.timedelta(days=LIFECYCLE_HORIZON_DAYS)
    added = plan_touchpoints(session, until, now=now)
    return f"生命周期触点已安排至 {until}：新增 {sum(added.values())} 个"


def _campaign_runner(code: str) -> Callable[[Session, dt.datetime], str]:
    def run(session: Session, now: dt.datetime) -> str:
        """Run one scheduled campaign (resuming its unfinished run, if any)."""
        result = run_campaign(session, code, now=now, trigger="scheduler")
        resumed = "（续跑）" if result.resumed else ""
        return (
            f"活动 {code} 执行（编号 {result.run_id}）{resumed}：名单 {result.audience} 户"
            f"（本次新增 {result.added}）"
        )

    return run
