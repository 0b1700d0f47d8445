"""The scheduler runs all the periodic work: every plugin's job is stored and listed with its
next local run, a changed setting reschedules it, each job does its work at the scheduler's
`now`, a job the user may not run is skipped with one line, and a failing job logs one line
while the others carry on. (Campaign jobs: test_scheduler.py.)"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time

import pytest
from sqlalchemy import func, select
from test_coordination import Assessor, make_app
from test_tickets import T0, make_world, minutes, opened
from test_warnings import add_survey

from crm import hookimpl
from crm.core.app import App
from crm.core.clock import local_zone
from crm.core.db import transaction
from crm.core.errors import CrmError, NotFound, PermissionDenied
from crm.core.models import AuditEntry, Household, Project, Setting, utcnow
from crm.core.schedule import Schedule, ScheduledJob, parse_schedule
from crm.core.scheduler import (
    execute,
    list_jobs,
    make_scheduler,
    paused_scheduler,
    run_job,
    serve,
    set_schedule,
    sync_jobs,
    use_app,
)
from crm.core.security import User
from crm.plugins import BUILTIN_PLUGINS
from crm.plugins.campaigns.models import Touchpoint
from crm.plugins.coordination.models import Decision
from crm.plugins.satisfaction.models import FeedbackRecord
from crm.plugins.service.models import Escalation, Staff, Team, Ticket, WorkOrder

# 05:03 on 28 April 2026 in Shanghai.
NOW = dt.datetime(2026, 4, 27, 21, 3, tzinfo=dt.UTC)
PLUGIN_JOBS = ["coordination", "lifecycle", "sla_check", "sync", "warnings"]


def local(day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(2026, 4, day, hour, minute, tzinfo=local_zone())


def sync(app, now=NOW):
    with app.session() as session, paused_scheduler(app) as scheduler:
        return sync_jobs(scheduler, session, now)


def jobs_by_id(app) -> dict[str, dict]:
    return {job["id"]: job for job in list_jobs(app, NOW)}


def test_every_plugins_job_is_stored_and_listed_with_its_next_local_run(app):
    assert sorted(sync(app).added) == PLUGIN_JOBS
    jobs = jobs_by_id(app)
    assert {job_id: (job["name"], job["schedule"], job["next_run"]) for job_id, job in jobs.items()} == {
        "sla_check": ("服务时限检查与升级", "每 5 分钟", local(28, 5, 5)),
        "sync": ("同步任务排期", "每 5 分钟", local(28, 5, 5)),
        "lifecycle": ("生命周期触点安排", "每天 06:00", local(28, 6, 0)),
        "warnings": ("客情预警检测", "每天 07:00", local(28, 7, 0)),
        "coordination": ("协调调度：评估反馈并派工", "每天 07:30", local(28, 7, 30)),
    }  # fmt: skip
    assert jobs["sla_check"]["next_run"].utcoffset() == dt.timedelta(hours=8)
    assert [jobs[j]["permission"] for j in PLUGIN_JOBS] == [
        "coordination.run", "campaign.manage", "ticket.handle", "scheduler.run",
        "satisfaction.record",
    ]  # fmt: skip
    assert jobs["warnings"]["setting"] == "scheduler.warnings"
    # Soonest first, as an operator reads it.
    assert [job["id"] for job in list_jobs(app, NOW)][2:] == [
        "lifecycle",
        "warnings",
        "coordination",
    ]


def test_a_job_whose_plugin_is_switched_off_is_removed_at_the_next_sync(app, db_url, monkeypatch):
    sync(app)
    monkeypatch.setenv("CRM_DISABLE_PLUGINS", "service")
    without = App(db_url, user=User("测试管理员", "admin"), builtins=BUILTIN_PLUGINS)
    monkeypatch.delenv("CRM_DISABLE_PLUGINS")
    try:
        result = sync(without)
        assert result.removed == ["sla_check"] and result.added == result.changed == []
    finally:
        without.dispose()
    assert sync(app).added == ["sla_check"]


def test_a_settings_change_reschedules_and_is_audited(app):
    sync(app)
    with app.session() as session, transaction(session):
        changed = set_schedule(session, "sla_check", "10m", now=NOW)
        set_schedule(session, "warnings", "06:45", now=NOW)
    assert changed["old"] == "5m" and changed["new"] == "10m"
    assert changed["schedule"] == "每 10 分钟（默认每 5 分钟）"
    result = sync(app)
    assert result.changed == ["sla_check", "warnings"] and result.added == result.removed == []
    jobs = jobs_by_id(app)
    assert jobs["sla_check"]["next_run"] == local(28, 5, 10)
    assert jobs["warnings"]["next_run"] == local(28, 6, 45)
    assert jobs["warnings"]["schedule"] == "每天 06:45（默认每天 07:00）"
    assert jobs["coordination"]["next_run"] == local(28, 7, 30)  # untouched
    with app.session() as session:
        entries = session.execute(
            select(AuditEntry.entity_id, AuditEntry.changes, AuditEntry.actor)
            .where(AuditEntry.entity == "settings")
            .order_by(AuditEntry.id)
        ).all()
    assert [tuple(e) for e in entries] == [
        ("scheduler.sla_check", {"value": ["5m", "10m"]}, "测试管理员"),
        ("scheduler.warnings", {"value": ["07:00", "06:45"]}, "测试管理员"),
    ]
    # Back to the default: the setting goes, the job follows at the next sync (here, the
    # scheduler's own sync job).
    with app.session() as session, transaction(session):
        set_schedule(session, "sla_check", None, now=NOW)
        assert session.get(Setting, "scheduler.sla_check") is None
    assert execute(app, "sync", NOW) == "变更 服务时限检查与升级"
    assert jobs_by_id(app)["sla_check"]["next_run"] == local(28, 5, 5)
    assert execute(app, "sync", NOW) is None  # nothing left to change


@pytest.mark.parametrize(
    ("job", "value", "error", "message"),
    [
        ("sla_check", "0m", CrmError, "间隔“0m”无效"),
        ("warnings", "25:00", CrmError, "时刻 25:00 无效"),
        ("warnings", "61 7 * * *", CrmError, "cron 表达式“61 7 * * *”无效"),
        ("warnings", "早上", CrmError, "排期“早上”无效"),
        ("nope", "5m", NotFound, "没有定时任务“nope”"),
    ],
)
def test_a_bad_setting_is_refused_and_nothing_is_stored(app, job, value, error, message):
    with app.session() as session, pytest.raises(error, match=re.escape(message)):
        set_schedule(session, job, value, now=NOW)
    with app.session() as session:
        assert session.scalar(select(func.count()).select_from(Setting).where(
            Setting.key.startswith("scheduler."))) == 0  # fmt: skip


def test_schedules_read_and_write_as_short_text():
    cases = {
        "5m": ("5m", "每 5 分钟"),
        "90分钟": ("90m", "每 90 分钟"),
        "2h": ("2h", "每 2 小时"),
        "7:05": ("07:05", "每天 07:05"),
        "0 7 * * 1-5": ("0 7 * * 1-5", "每周一至五 07:00"),
        "30 9  * * 1,3,5": ("30 9 * * 1,3,5", "每周一、三、五 09:30"),
        "0 8 1 * *": ("0 8 1 * *", "每月 1 日 08:00"),
        "* * * * *": ("* * * * *", "每分钟"),
        "15 * * * *": ("15 * * * *", "每小时第 15 分"),
        "*/10 8-18 * * *": ("*/10 8-18 * * *", "按 cron 规则“*/10 8-18 * * *”（分 时 日 月 周）"),
    }
    for text, (stored, words) in cases.items():
        schedule = parse_schedule(text)
        assert (schedule.text(), schedule.words()) == (stored, words), text
        assert parse_schedule(schedule.text()) == schedule


def test_only_managers_change_a_schedule_and_campaign_jobs_follow_their_campaign(app, run):
    from crm.plugins.campaigns.campaigns import create_campaign, normalise_rule

    with app.session() as session, transaction(session):
        create_campaign(session, "WEEKLY", "每周关怀", "loyalty", "短信", "{家庭}您好",
                        normalise_rule(session, "loyalty"), cron="0 9 * * 1")  # fmt: skip
    denied = run("scheduler", "set", "sla_check", "10m", as_="张客服:agent")
    assert denied.exit_code == 3 and "无权修改定时任务的排期" in denied.output
    fixed = run("scheduler", "set", "campaign:WEEKLY", "10m", as_="王经理:manager")
    assert fixed.exit_code == 1 and "按它自己的数据排期" in fixed.output
    assert "Traceback" not in fixed.output
    changed = run("scheduler", "set", "sla_check", "10m", "--format", "json", as_="王经理:manager")
    assert changed.exit_code == 0, changed.output
    record = json.loads(changed.stdout)
    assert record["new"] == "10m" and record["next_run"].endswith("0:00+08:00")
    jobs = {
        job["id"]: job for job in json.loads(run("scheduler", "jobs", "--format", "json").stdout)
    }
    assert jobs["sla_check"]["schedule"] == "每 10 分钟（默认每 5 分钟）"
    assert jobs["campaign:WEEKLY"]["schedule"] == "每周一 09:00"
    assert jobs["campaign:WEEKLY"]["setting"] is None
    reset = run("scheduler", "set", "sla_check", "--default", as_="王经理:manager")
    assert reset.exit_code == 0, reset.output
    jobs = {
        job["id"]: job for job in json.loads(run("scheduler", "jobs", "--format", "json").stdout)
    }
    assert jobs["sla_check"]["schedule"] == "每 5 分钟"
    both = run("scheduler", "set", "sla_check", "5m", "--default", as_="王经理:manager")
    assert both.exit_code == 1 and "二者选一" in both.output


# --- each job does its work at the scheduler's `now` -------------------------------------------


def test_the_sla_job_breaches_and_escalates_an_overdue_ticket(app, session):
    make_world(session)
    number = opened(session)  # a complaint at T0 nobody answered
    assert execute(app, "sla_check", T0 + minutes(5)) is None  # not due yet: nothing to say
    summary = execute(app, "sla_check", T0 + minutes(12))
    assert summary == f"首次响应超时 1 件（{number}）；已升级 1 件（{number}）"
    with app.session() as fresh:
        ticket = fresh.scalar(select(Ticket).where(Ticket.number == number))
        escalations = fresh.execute(
            select(Escalation.rule, Escalation.level, Escalation.fired_at)
        ).all()
    assert ticket.response_breached and ticket.escalation_level == 2
    assert [tuple(row) for row in escalations] == [("breach", 2, T0 + minutes(12))]


def _garden(app) -> dict[str, int]:
    """A project with two households and customer-service and technical staff."""
    with app.session() as session, transaction(session):
        project = Project(name="城市花园")
        homes = [
            Household(code=f"H{i}", name=f"业主{i}家", status="existing", project=project)
            for i in (1, 2)
        ]
        session.add_all(homes)
        teams = {t.kind: t for t in session.scalars(select(Team))}
        session.add_all(
            [
                Staff(
                    name="客服乙", team_id=teams["customer_service"].id, title="客服大使", level=1
                ),
                Staff(name="技术员", team_id=teams["technical"].id, title="技术员", level=1),
            ]
        )
        session.flush()
        return {"project": project.id} | {h.code: h.id for h in homes}


def test_the_warnings_job_detects_and_the_coordination_job_dispatches_after_it(
    app, db_url, monkeypatch
):
    homes = _garden(app)
    for days, csat in ((60, 5), (40, 5), (2, 2)):  # H1's latest survey falls clearly
        add_survey(app, homes["H1"], homes["project"], NOW - dt.timedelta(days=days), csat)
    morning = local(28, 7, 0)
    assert execute(app, "warnings", morning) == "新增客情预警 1 条（满意度下降 1）"
    assert execute(app, "warnings", morning) == "新增客情预警 0 条"  # never twice
    with app.session() as session:
        [record] = session.scalars(select(FeedbackRecord)).all()
    assert record.household_id == homes["H1"] and record.detected_at == morning

    # Coordination with a stand-in assessor (profitability off), half an hour later.
    chain = make_app(db_url, monkeypatch, Assessor())
    try:
        later = local(28, 7, 30)
        assert execute(chain, "coordination", later) == (
            "收集反馈 1 条，得出方案 1 条（无方案 0），派工 1 条（未能派工 0），办结 0 条"
        )
        assert execute(chain, "coordination", later + minutes(1)).startswith("收集反馈 0 条")
    finally:
        chain.dispose()
    with app.session() as session:
        [decision] = session.scalars(select(Decision)).all()
        [task] = session.scalars(select(WorkOrder)).all()
        tickets = session.scalars(select(Ticket)).all()
    assert decision.status == "dispatched" and decision.household_code == "H1"
    # The plan is a task for staff at the scheduler's time, not a ticket in the customer's name.
    assert task.household_id == homes["H1"] and task.created_at == later and tickets == []


def test_the_lifecycle_job_plans_touchpoints_as_of_its_now(app, session):
    make_world(session)  # owners handed over 2006-01-01: an anniversary every January
    january = dt.datetime(2026, 1, 1, 22, 0, tzinfo=dt.UTC)  # 06:00 on 2 January in Shanghai
    summary = execute(app, "lifecycle", january)
    assert summary.startswith("生命周期触点已安排至 2026-02-01：新增 ")
    with app.session() as fresh:
        planned = fresh.scalar(select(func.count()).select_from(Touchpoint))
    assert planned > 0 and summary.endswith(f"新增 {planned} 个")
    assert execute(app, "lifecycle", january) == "生命周期触点已安排至 2026-02-01：新增 0 个"


# --- permissions and failures ------------------------------------------------------------------


@pytest.fixture
def agent_app(db_url):
    instance = App(db_url, user=User("张客服", "agent"), builtins=BUILTIN_PLUGINS)
    yield instance
    instance.dispose()


def test_jobs_the_user_may_not_run_are_skipped_with_one_line(app, agent_app, caplog, session):
    make_world(session)
    caplog.set_level(logging.INFO, logger="crm.scheduler")
    with pytest.raises(PermissionDenied):
        execute(agent_app, "lifecycle", NOW)
    result = serve(agent_app, seconds=0.3)
    assert sorted(result.added) == PLUGIN_JOBS
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lines == [
        (
            "张客服（客服专员）没有以下任务所需的权限，这些任务将跳过："
            "“生命周期触点安排”（lifecycle，销售、经理、系统管理员可运行）"
        )
    ]
    caplog.clear()
    run_job("lifecycle")  # due: skipped quietly, the start said so
    run_job("lifecycle")
    assert caplog.records == []
    with app.session() as fresh:
        assert fresh.scalar(select(func.count()).select_from(Touchpoint)) == 0
    # What the agent may run, runs.
    assert execute(agent_app, "sla_check", NOW) is None


def test_the_cli_says_which_jobs_it_skips(app, run):
    ran = run("scheduler", "run", "--for", "0.3", as_="张客服:agent")
    assert ran.exit_code == 0, ran.output
    assert (
        "张客服（客服专员）没有以下任务所需的权限，这些任务将跳过：“生命周期触点安排”" in ran.stderr
    )
    assert "调度程序已停止" in ran.stderr


class Periodic:
    """A plugin with two one-minute jobs: one always fails, one counts its runs."""

    def __init__(self):
        self.ticks: list[dt.datetime] = []

    @hookimpl
    def scheduled_jobs(self, session, now):
        return [
            ScheduledJob("boom", "总是出错的任务", Schedule.every(1), "export", self.boom),
            ScheduledJob("tick", "计数任务", Schedule.every(1), "export", self.tick),
        ]

    def boom(self, session, now):
        return 1 / 0

    def tick(self, session, now):
        self.ticks.append(now)
        return f"第 {len(self.ticks)} 次"


def test_a_failing_job_logs_one_line_and_the_scheduler_carries_on(app, caplog):
    plugin = Periodic()
    app.pm.register(plugin, name="test-periodic")
    caplog.set_level(logging.INFO, logger="crm.scheduler")
    try:
        start = utcnow()
        with app.session() as session, paused_scheduler(app) as store:
            sync_jobs(store, session)
            for job_id in ("boom", "tick"):  # both due now
                store.modify_job(job_id, next_run_time=start)
        scheduler = make_scheduler(app)
        use_app(app, scheduler)
        scheduler.start()
        try:
            deadline = time.monotonic() + 30
            while not (plugin.ticks and _errors(caplog)) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert scheduler.running
        finally:
            scheduler.shutdown(wait=True)
    finally:
        app.pm.unregister(plugin)
    assert _errors(caplog) == [
        (
            "任务 “总是出错的任务”（boom）未能完成：程序错误 ZeroDivisionError（division by zero）；"
            "其他任务照常运行，本任务下次按时再试。"
        )
    ]
    assert "任务 “计数任务”（tick）完成：第 1 次" in [r.getMessage() for r in caplog.records]
    assert len(plugin.ticks) == 1 and plugin.ticks[0] >= start  # the scheduler's now
    next_runs = {job["id"]: job["next_run"] for job in list_jobs(app)}
    assert next_runs["boom"] > start  # still scheduled, for its next minute


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_job_no_plugin_offers_any_more_is_skipped_with_a_warning(app, caplog):
    caplog.set_level(logging.INFO, logger="crm.scheduler")
    use_app(app)
    run_job("campaign:GONE")
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("定时任务“campaign:GONE”已不在任何插件提供的任务中")
