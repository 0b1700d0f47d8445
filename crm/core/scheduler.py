"""The scheduler (APScheduler 3): all the CRM's periodic work, run by one long-running process
(`crm scheduler run`), with the jobs kept in the CRM database (table scheduler_jobs, core
migration 0002) so they survive a restart.

Plugins describe their jobs through the `scheduled_jobs` hook (crm.core.schedule.ScheduledJob);
the core adds "sync", which brings the stored jobs in line with what the plugins offer now (a
campaign created or paused, a schedule changed with `crm scheduler set`) while the process runs.
A configurable job runs on the setting scheduler.<job id> when there is one, else on its default.

The job store names one function for every job: `run_job(job id)`. When a job is due it looks
the job up through the hook and runs it, so the store never refers to plugin code. Each run acts
as the user who started the scheduler, at the scheduler's time; a job whose permission that user
lacks is skipped (said once in the log), and a job that fails logs one line while the others
carry on. Defaults: a missed run is coalesced into one (coalesce), never two at once
(max_instances=1), and a run missed by more than MISFIRE_GRACE_SECONDS waits for its next time.

APScheduler is imported inside functions so `crm --help` does not load it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from crm.core import audit
from crm.core.clock import local_zone, to_local
from crm.core.db import transaction
from crm.core.errors import CrmError, NotFound, PermissionDenied
from crm.core.models import Setting, utcnow
from crm.core.schedule import Schedule, ScheduledJob, parse_schedule
from crm.core.security import PERMISSIONS

JOB_TABLE = "scheduler_jobs"
# A run missed while the scheduler was down still happens once if it comes back within six
# hours (the same working day); older misses wait for the next time rather than contacting
# customers at an hour nobody chose.
MISFIRE_GRACE_SECONDS = 6 * 3600
SETTING_PREFIX = "scheduler."
SYNC_JOB = "sync"
JOB_COLUMNS = [
    ("id", "任务"),
    ("name", "名称"),
    ("schedule", "排期"),
    ("next_run", "下次运行（本地时间）"),
    ("setting", "设置项"),
    ("roles", "可运行的角色"),
]
# Programs read the permission's code too.
JOB_JSON_COLUMNS = [*JOB_COLUMNS[:-1], ("permission", "所需权限"), ("roles", "可运行的角色")]

log = logging.getLogger("crm.scheduler")
_runtime: dict = {}
_runtime_lock = threading.Lock()


# --- the jobs ----------------------------------------------------------------------------------


def core_jobs() -> list[ScheduledJob]:
    """The core's own job: keep the stored jobs in line with the plugins' (see sync_jobs)."""
    return [
        ScheduledJob(
            SYNC_JOB, "同步任务排期", Schedule.every(5), "scheduler.run", sync_job, commits=True
        )
    ]


def offered_jobs(session: Session, now: dt.datetime) -> list[ScheduledJob]:
    """Every job there is now: the core's and each loaded plugin's (`scheduled_jobs` hook)."""
    jobs = core_jobs()
    pm = session.info.get("pm")
    if pm is not None:
        for found in pm.hook.scheduled_jobs(session=session, now=now):
            jobs.extend(found or [])
    seen: set[str] = set()
    for job in jobs:
        if not job.id or len(job.id) > 191 or any(ch.isspace() for ch in job.id):
            raise CrmError(f"定时任务编号“{job.id}”无效：须为 1 到 191 个字符且不含空白。")
        if job.id in seen:
            raise CrmError(f"有两个定时任务都叫“{job.id}”：请停用提供重复任务的插件。")
        if job.permission not in PERMISSIONS:
            raise CrmError(
                f"定时任务“{job.id}”要求的权限“{job.permission}”不存在：请检查提供它的插件。"
            )
        seen.add(job.id)
    return jobs


def setting_key(job_id: str) -> str:
    return SETTING_PREFIX + job_id


@dataclass(frozen=True)
class PlannedJob:
    """A job with the schedule in force: its setting when there is one, else its default."""

    job: ScheduledJob
    schedule: Schedule

    @property
    def changed(self) -> bool:
        return self.schedule != self.job.schedule

    def words(self) -> str:
        words = self.schedule.words()
        return f"{words}（默认{self.job.schedule.words()}）" if self.changed else words


def planned_jobs(session: Session, now: dt.datetime) -> list[PlannedJob]:
    """Every job with its schedule in force, by id."""
    values = dict(
        session.execute(
            select(Setting.key, Setting.value).where(Setting.key.startswith(SETTING_PREFIX))
        ).all()
    )
    planned = []
    for job in offered_jobs(session, now):
        schedule = job.schedule
        value = values.get(setting_key(job.id))
        if job.configurable and value is not None:
            try:
                schedule = parse_schedule(value)
            except CrmError:
                raise CrmError(
                    f"设置 {setting_key(job.id)} 的值“{value}”不是有效的排期："
                    f"请用 crm scheduler set {job.id} 重新设置。"
                ) from None
        planned.append(PlannedJob(job, schedule))
    return sorted(planned, key=lambda item: item.job.id)


def find_job(session: Session, job_id: str, now: dt.datetime) -> ScheduledJob:
    """The job of that id among those offered now; NotFound if none is."""
    for job in offered_jobs(session, now):
        if job.id == job_id:
            return job
    raise NotFound(
        f"定时任务“{job_id}”已不在任何插件提供的任务中（活动已暂停或删除，或插件已停用）："
        "本次跳过，下次同步时移除。"
    )


def set_schedule(
    session: Session, job_id: str, value: str | None, now: dt.datetime | None = None
) -> dict:
    """Change how often a job runs ("10m", "07:30" or a crontab line), or put it back on its
    default (`value` None); checked before it is stored, and audited. The stored jobs follow at
    the next sync. Returns the job's id, name, setting, old and new value, schedule in words."""
    audit.current_user(session).require("scheduler.configure", "修改定时任务的排期")
    job = next(
        (job for job in offered_jobs(session, now or utcnow()) if job.id == job_id.strip()), None
    )
    if job is None:
        raise NotFound(f"没有定时任务“{job_id}”：用 crm scheduler jobs 查看任务编号。")
    if not job.configurable:
        raise CrmError(
            f"任务“{job.id}”（{job.name}）按它自己的数据排期（如活动的排期），不能用设置修改。"
        )
    key = setting_key(job.id)
    row = session.get(Setting, key)
    old = row.value if row is not None else job.schedule.text()
    schedule = job.schedule if value is None else parse_schedule(value)
    new = schedule.text()
    if value is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(Setting(key=key, value=new))
    else:
        row.value = new
    if new != old:
        audit.record(session, "update", "settings", key, {"value": [old, new]})
    session.flush()
    return {
        "id": job.id,
        "name": job.name,
        "setting": key,
        "old": old,
        "new": new,
        "schedule": PlannedJob(job, schedule).words(),
    }


# --- the job store -----------------------------------------------------------------------------


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


def _scheduler(engine: Engine, blocking: bool = False, store_only: bool = False):
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
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)},
        job_defaults=job_defaults(),
        timezone=local_zone(),
        **options,
    )


def make_scheduler(app, blocking: bool = False, store_only: bool = False):
    """A scheduler whose jobs live in the App's database (same engine): background (tests,
    embedding), blocking (`crm scheduler run`) or store-only (reading and syncing jobs)."""
    return _scheduler(app.engine, blocking=blocking, store_only=store_only)


@contextmanager
def _store(engine: Engine) -> Iterator:
    scheduler = _scheduler(engine, store_only=True)
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


def paused_scheduler(app):
    """A started, store-only scheduler on the App's job store: reads and changes stored jobs
    without running any."""
    return _store(app.engine)


def use_app(app, scheduler=None) -> None:
    """Name the App (and the running scheduler) that run_job uses in this process."""
    with _runtime_lock:
        _runtime["app"] = app
        _runtime["skipped"] = set()
        if scheduler is not None:
            _runtime["scheduler"] = scheduler


def _app():
    app = _runtime.get("app")
    if app is None:
        raise RuntimeError(
            "scheduler jobs run inside `crm scheduler run` (serve registers the App)"
        )
    return app


# --- syncing the stored jobs -------------------------------------------------------------------


@dataclass
class SyncResult:
    added: list[str]
    changed: list[str]
    removed: list[str]
    kept: list[str]
    names: dict[str, str] = field(default_factory=dict)  # job id -> its Chinese name

    def rows(self) -> list[dict]:
        """One row per kind of change that happened: {"change": 新增…, "jobs": "a、b",
        "job_names": the same jobs by name}."""
        kinds = (("新增", self.added), ("变更", self.changed), ("移除", self.removed))
        return [
            {"change": title, "jobs": "、".join(ids), "job_names": self._names(ids)}
            for title, ids in (*kinds, ("保留", self.kept))
            if ids
        ]

    def summary(self) -> str:
        """The changes in one line, jobs by name; empty when nothing changed."""
        kinds = (("新增", self.added), ("变更", self.changed), ("移除", self.removed))
        return "；".join(f"{title} {self._names(ids)}" for title, ids in kinds if ids)

    def _names(self, ids: list[str]) -> str:
        return "、".join(self.names.get(job_id, job_id) for job_id in ids)


def sync_jobs(scheduler, session: Session, now: dt.datetime | None = None) -> SyncResult:
    """Make the stored jobs match the jobs offered now: add missing ones, reschedule those whose
    schedule changed, remove those no longer offered (a paused campaign, a disabled plugin). An
    unchanged job keeps its stored next run time, so a run missed while the scheduler was down
    still comes (once). New and rescheduled jobs get their next run as of `now`."""
    now = now or utcnow()
    local_now = to_local(now)
    planned = planned_jobs(session, now)
    stored = {job.id: job for job in scheduler.get_jobs()}
    result = SyncResult([], [], [], [])
    result.names = {job_id: job.name for job_id, job in stored.items()}
    result.names |= {item.job.id: item.job.name for item in planned}
    for item in planned:
        job, trigger = item.job, item.schedule.trigger()
        found = stored.get(job.id)
        if found is None:
            scheduler.add_job(
                run_job, trigger, args=[job.id], id=job.id, name=job.name,
                next_run_time=trigger.get_next_fire_time(None, local_now),
            )  # fmt: skip
            result.added.append(job.id)
        elif repr(found.trigger) != repr(trigger):
            scheduler.modify_job(
                job.id, name=job.name, trigger=trigger,
                next_run_time=trigger.get_next_fire_time(None, local_now),
            )  # fmt: skip
            result.changed.append(job.id)
        else:
            if found.name != job.name:
                scheduler.modify_job(job.id, name=job.name)
            result.kept.append(job.id)
    wanted = {item.job.id for item in planned}
    for job_id in stored:
        if job_id not in wanted:
            scheduler.remove_job(job_id)
            result.removed.append(job_id)
    return result


def sync_stored_jobs(app, now: dt.datetime | None = None) -> SyncResult:
    """Sync the stored jobs once (for `crm scheduler sync`, `set` and start-up)."""
    with app.session() as session, paused_scheduler(app) as scheduler:
        audit.current_user(session).require("scheduler.run", "同步定时任务")
        return sync_jobs(scheduler, session, now)


@dataclass
class JobTable:
    rows: list[dict]
    unsynced: list[str]  # offered, not yet stored
    stale: list[str]  # stored, no longer offered
    names: dict[str, str] = field(default_factory=dict)  # job id -> its Chinese name

    def named(self, ids: list[str]) -> str:
        """Jobs as people read them, with the id `crm scheduler set` takes: 名称（id）."""
        return "、".join(f"{self.names.get(job_id, job_id)}（{job_id}）" for job_id in ids)


def job_table(app, now: dt.datetime | None = None) -> JobTable:
    """The stored jobs, soonest first, with name, schedule in words, next run in the business
    zone, setting and permission; and which jobs a sync would add or remove."""
    with app.session() as session:
        planned = {item.job.id: item for item in planned_jobs(session, now or utcnow())}
    with paused_scheduler(app) as scheduler:
        stored = scheduler.get_jobs()
    rows = []
    for job in stored:
        item = planned.get(job.id)
        rows.append(
            {
                "id": job.id,
                "name": item.job.name if item else job.name,
                "schedule": item.words() if item else str(job.trigger),
                # Aware, in the business zone: tables show it as local time, JSON with its offset.
                "next_run": to_local(job.next_run_time) if job.next_run_time else None,
                "setting": setting_key(job.id) if item and item.job.configurable else None,
                "permission": item.job.permission if item else None,
                "roles": _roles_with(item.job.permission) if item else None,
            }
        )
    ids = {job.id for job in stored}
    names = {job.id: job.name for job in stored} | {i: item.job.name for i, item in planned.items()}
    return JobTable(rows, sorted(set(planned) - ids), sorted(ids - set(planned)), names)


def _roles_with(permission: str) -> str:
    """The roles that hold a permission, by their Chinese names."""
    from crm.core.security import PERMISSIONS, ROLES

    return "、".join(label for role, label in ROLES.items() if role in PERMISSIONS[permission])


def list_jobs(app, now: dt.datetime | None = None) -> list[dict]:
    """The stored jobs with their next run time in the business zone (see job_table)."""
    return job_table(app, now).rows


# --- running jobs ------------------------------------------------------------------------------


def perform(session: Session, job: ScheduledJob, now: dt.datetime) -> str | None:
    """Run one job as the session's user at `now`: its permission first, then the work in one
    transaction, or in a session outside any when the job commits itself."""
    audit.current_user(session).require(job.permission, f"运行定时任务“{job.name}”")
    if job.commits:
        session.rollback()  # ends the look-up's read: the job opens its own transactions
        return job.run(session, now)
    with transaction(session):
        return job.run(session, now)


def execute(app, job_id: str, now: dt.datetime | None = None) -> str | None:
    """Run one job once as the App's user, at `now` (default: now), as the scheduler does
    when it is due; returns the job's summary line."""
    now = now or utcnow()
    with app.session() as session:
        return perform(session, find_job(session, job_id, now), now)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, CrmError):
        return str(exc)
    cause = getattr(exc, "orig", None)
    lines = str(cause or exc).strip().splitlines()
    kind = "数据库错误" if cause is not None else f"程序错误 {type(exc).__name__}"
    return f"{kind}（{lines[0]}）" if lines else kind


def run_job(job_id: str) -> None:
    """What the job store calls for every job (module-level, so the store can name it): look
    the job up and run it now, logging one line for what it did, why it was skipped or why it
    failed. Never raises: one job's failure must not stop the others."""
    app = _app()
    now = utcnow()
    title = f"“{job_id}”"
    try:
        with app.session() as session:
            job = find_job(session, job_id, now)
            title = f"“{job.name}”（{job.id}）"
            summary = perform(session, job, now)
    except PermissionDenied as exc:
        skipped = _runtime.setdefault("skipped", set())
        if job_id not in skipped:  # said at start for the jobs known then
            skipped.add(job_id)
            log.warning("任务 %s跳过：%s", title, exc)
        return
    except NotFound as exc:
        log.warning("%s", exc)
        return
    except Exception as exc:  # one failed job must not stop the scheduler
        log.error(
            "任务 %s未能完成：%s；其他任务照常运行，本任务下次按时再试。", title, _one_line(exc)
        )
        log.debug("任务 %s的错误详情", title, exc_info=True)
        return
    if summary:
        log.info("任务 %s完成：%s", title, summary)


def sync_job(session: Session, now: dt.datetime) -> str | None:
    """The core's job: sync the stored jobs, through the running scheduler when there is one
    (so a job added for sooner than anything else wakes it), else straight in the store."""
    scheduler = _runtime.get("scheduler")
    if scheduler is not None and scheduler.running:
        result = sync_jobs(scheduler, session, now)
    else:
        with _store(session.get_bind()) as store:
            result = sync_jobs(store, session, now)
    return result.summary() or None


# --- the long-running process ------------------------------------------------------------------


def serve(app, seconds: float | None = None) -> SyncResult:
    """Sync the jobs, then run them until Ctrl-C (or for `seconds`, for tests and trials).
    Says at start which jobs the user may not run (they are skipped). Stops cleanly: running
    jobs finish, the stored jobs stay for the next start."""
    result = sync_stored_jobs(app)
    with app.session() as session:
        planned = planned_jobs(session, utcnow())
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
    denied = [item.job for item in planned if not app.user.can(item.job.permission)]
    if denied:
        _runtime["skipped"].update(job.id for job in denied)
        log.warning(
            "%s没有以下任务所需的权限，这些任务将跳过：%s",
            app.user.label,
            "、".join(
                f"“{job.name}”（{job.id}，{_roles_with(job.permission)}可运行）" for job in denied
            ),
        )
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
