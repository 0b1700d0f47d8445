"""The scheduler (APScheduler 3): scheduled campaign runs and the daily lifecycle plan, with the
jobs kept in the CRM's own database (table camp_scheduler_jobs, created by the campaigns
migration) so they survive a restart.

Jobs: "campaign:<code>" per active scheduled campaign, "lifecycle" planning touchpoints every
morning, and "sync" picking up campaigns created, changed or paused while the process runs.
Defaults: a missed run is coalesced into one (coalesce), never two at once (max_instances=1),
and a run missed by more than MISFIRE_GRACE_SECONDS waits for its next time.

Job functions are module-level so the job store can keep references to them; they use the App
the running process registered with `serve`, i.e. the database the jobs are stored in.
APScheduler is imported inside functions so `crm --help` does not load it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import select

from crm.core import audit
from crm.core.clock import local_today, local_zone, to_local
from crm.core.errors import CrmError
from crm.core.models import utcnow
from crm.plugins.campaigns.models import Campaign, CampaignRun

JOB_TABLE = "camp_scheduler_jobs"
# A run missed while the scheduler was down still happens once if it comes back within six
# hours (the same working day); older misses wait for the next time rather than contacting
# customers at an hour nobody chose.
MISFIRE_GRACE_SECONDS = 6 * 3600
LIFECYCLE_HOUR = 6  # plan touchpoints before the teams start work
LIFECYCLE_HORIZON_DAYS = 30
SYNC_MINUTES = 5
CAMPAIGN_JOB_PREFIX = "campaign:"
JOB_COLUMNS = [
    ("id", "任务"),
    ("name", "名称"),
    ("trigger", "触发规则"),
    ("next_run", "下次运行（本地时间）"),
]

log = logging.getLogger("crm.scheduler")
_runtime: dict = {}
_runtime_lock = threading.Lock()


def job_defaults() -> dict:
    return {"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS}


def _store_only_class():
    from apscheduler.schedulers.base import BaseScheduler

    class StoreOnlyScheduler(BaseScheduler):
        """Reads and changes stored jobs and never runs one: no thread, no wake-ups. (A paused
        BackgroundScheduler processes due jobs once while shutting down, which would use up a
        missed run that belongs to the real scheduler.)"""

        def wakeup(self) -> None:
            pass

        def shutdown(self, wait: bool = True) -> None:
            super().shutdown(wait)

    return StoreOnlyScheduler


def make_scheduler(app, blocking: bool = False, store_only: bool = False):
    """A scheduler whose jobs live in the App's database (same engine): background (tests,
    embedding), blocking (`crm scheduler run`) or store-only (reading and syncing jobs)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    options = {}
    if store_only:
        Scheduler = _store_only_class()
        # Its start and stop are bookkeeping, not news for the operator's log.
        options["logger"] = logging.getLogger("crm.scheduler.store")
        options["logger"].setLevel(logging.WARNING)
    elif blocking:
        from apscheduler.schedulers.blocking import BlockingScheduler as Scheduler
    else:
        from apscheduler.schedulers.background import BackgroundScheduler as Scheduler
    return Scheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=app.engine, tablename=JOB_TABLE)},
        job_defaults=job_defaults(),
        timezone=local_zone(),
        **options,
    )


@contextmanager
def paused_scheduler(app) -> Iterator:
    """A started, store-only scheduler on the App's job store: reads and changes stored jobs
    without running any."""
    scheduler = make_scheduler(app, store_only=True)
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


def use_app(app, scheduler=None) -> None:
    """Name the App (and the running scheduler) the job functions of this process use."""
    with _runtime_lock:
        _runtime["app"] = app
        if scheduler is not None:
            _runtime["scheduler"] = scheduler


def _app():
    app = _runtime.get("app")
    if app is None:
        raise RuntimeError(
            "scheduler jobs run inside `crm scheduler run` (serve registers the App)"
        )
    return app


# --- syncing jobs from campaigns -----------------------------------------------------------


@dataclass
class SyncResult:
    added: list[str]
    changed: list[str]
    removed: list[str]
    kept: list[str]

    def rows(self) -> list[dict]:
        """One row per kind of change that happened: {"change": 新增…, "jobs": "a、b"}."""
        kinds = (("新增", self.added), ("变更", self.changed), ("移除", self.removed))
        return [
            {"change": title, "jobs": "、".join(ids)}
            for title, ids in (*kinds, ("保留", self.kept))
            if ids
        ]


def _wanted_campaigns(session, now: dt.datetime) -> list[Campaign]:
    """Active scheduled campaigns; a one-off whose time came and that has run since is done."""
    from crm.plugins.campaigns.campaigns import make_trigger

    wanted = []
    for campaign in session.scalars(
        select(Campaign).where(Campaign.active.is_(True), Campaign.schedule_kind.is_not(None))
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
        if make_trigger(campaign) is not None:
            wanted.append(campaign)
    return wanted


def sync_jobs(scheduler, session, now: dt.datetime | None = None) -> SyncResult:
    """Make the stored jobs match the campaigns: add missing jobs, reschedule changed ones,
    remove those of deleted, paused or unscheduled campaigns. An unchanged job keeps its
    stored next run time, so a run missed while the scheduler was down still comes (once)."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from crm.plugins.campaigns.campaigns import make_trigger

    now = now or utcnow()
    stored = {job.id: job for job in scheduler.get_jobs()}
    result = SyncResult([], [], [], [])
    desired = {
        f"{CAMPAIGN_JOB_PREFIX}{c.code}": (c.name, make_trigger(c), [c.code], run_campaign_job)
        for c in _wanted_campaigns(session, now)
    }
    zone = local_zone()
    desired["lifecycle"] = (
        "生命周期触点安排",
        CronTrigger(hour=LIFECYCLE_HOUR, minute=0, timezone=zone),
        [],
        plan_lifecycle_job,
    )
    desired["sync"] = (
        "同步活动排期",
        IntervalTrigger(minutes=SYNC_MINUTES, timezone=zone),
        [],
        sync_job,
    )
    for job_id, (name, trigger, args, func) in desired.items():
        job = stored.get(job_id)
        if job is None:
            scheduler.add_job(func, trigger, args=args, id=job_id, name=name)
            result.added.append(job_id)
        elif job_id != "sync" and repr(job.trigger) != repr(trigger):
            scheduler.modify_job(job_id, name=name, args=args)
            scheduler.reschedule_job(job_id, trigger=trigger)
            result.changed.append(job_id)
        else:
            if job.name != name:
                scheduler.modify_job(job_id, name=name)
            result.kept.append(job_id)
    for job_id in stored:
        if job_id.startswith(CAMPAIGN_JOB_PREFIX) and job_id not in desired:
            scheduler.remove_job(job_id)
            result.removed.append(job_id)
    return result


def list_jobs(app) -> list[dict]:
    """The stored jobs with their next run time in the business zone."""
    with paused_scheduler(app) as scheduler:
        jobs = scheduler.get_jobs()
        return [
            {
                "id": job.id,
                "name": job.name,
                "trigger": str(job.trigger),
                # Aware, in the business zone: tables show it as local time, JSON with its offset.
                "next_run": to_local(job.next_run_time) if job.next_run_time else None,
            }
            for job in jobs
        ]


def sync_stored_jobs(app) -> SyncResult:
    """Sync the stored jobs from the campaigns once (for `crm scheduler sync` and start-up)."""
    with app.session() as session, paused_scheduler(app) as scheduler:
        audit.current_user(session).require("campaign.manage", "管理定时任务")
        return sync_jobs(scheduler, session)


# --- the long-running process --------------------------------------------------------------


def serve(app, seconds: float | None = None) -> SyncResult:
    """Sync the jobs, then run them until Ctrl-C (or for `seconds`, for tests and trials).
    Stops cleanly: running jobs finish, the stored jobs stay for the next start."""
    result = sync_stored_jobs(app)
    scheduler = make_scheduler(app, blocking=True)
    use_app(app, scheduler)
    timer = None
    if seconds is not None:
        timer = threading.Timer(seconds, scheduler.shutdown)
        timer.daemon = True
        timer.start()
    log.info(
        "定时任务已同步：新增 %d、变更 %d、移除 %d、保留 %d",
        len(result.added), len(result.changed), len(result.removed), len(result.kept),
    )  # fmt: skip
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("收到停止信号，正在等待运行中的任务结束")
        if scheduler.running:
            scheduler.shutdown()
    finally:
        if timer is not None:
            timer.cancel()
    log.info("调度程序已停止")
    return result


# --- job functions (module-level: the job store keeps references to them) -------------------


def run_campaign_job(code: str) -> None:
    """Run one scheduled campaign (resuming its unfinished run, if any)."""
    from crm.plugins.campaigns.campaigns import run_campaign

    app = _app()
    with app.session() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.code == code))
        if campaign is None or not campaign.active:
            log.warning("活动 %s 已删除或暂停，跳过本次运行", code)
            return
        try:
            result = run_campaign(session, code, trigger="scheduler")
        except CrmError as exc:
            session.rollback()
            log.error("活动 %s 未能执行：%s", code, exc)
            return
    log.info(
        "活动 %s 执行（编号 %d）%s完成：名单 %d 户（本次新增 %d）",
        code, result.run_id, "（续跑）" if result.resumed else "", result.audience, result.added,
    )  # fmt: skip


def plan_lifecycle_job() -> None:
    """Plan the lifecycle touchpoints due in the next LIFECYCLE_HORIZON_DAYS days."""
    from crm.core.db import transaction
    from crm.plugins.campaigns.lifecycle import plan_touchpoints

    app = _app()
    until = local_today() + dt.timedelta(days=LIFECYCLE_HORIZON_DAYS)
    try:
        with app.session() as session, transaction(session):
            added = plan_touchpoints(session, until)
    except CrmError as exc:
        log.error("生命周期触点未能安排：%s", exc)
        return
    log.info("生命周期触点已安排至 %s：新增 %d 个", until, sum(added.values()))


def sync_job() -> None:
    """Pick up campaigns created, changed or paused since the last sync."""
    app = _app()
    scheduler = _runtime.get("scheduler")
    if scheduler is None:
        return
    with app.session() as session:
        result = sync_jobs(scheduler, session)
    if result.added or result.changed or result.removed:
        log.info(
            "活动排期已同步：新增 %s，变更 %s，移除 %s",
            "、".join(result.added) or "无", "、".join(result.changed) or "无",
            "、".join(result.removed) or "无",
        )  # fmt: skip
