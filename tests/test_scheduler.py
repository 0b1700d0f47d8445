"""The scheduler's campaign jobs: jobs kept in the CRM database survive a restart, syncing
follows the campaigns without resetting stored run times, a run missed several times is run
once, and the `crm scheduler` commands. (The other plugins' jobs: test_scheduler_jobs.py.)"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from sqlalchemy import func, select

from crm.core.app import App
from crm.core.clock import local_zone
from crm.core.db import transaction
from crm.core.models import Building, Household, Project, Purchase, Unit, utcnow
from crm.core.scheduler import (
    list_jobs,
    make_scheduler,
    paused_scheduler,
    sync_jobs,
    use_app,
)
from crm.core.security import User
from crm.plugins import BUILTIN_PLUGINS
from crm.plugins.campaigns.campaigns import create_campaign, normalise_rule, set_active
from crm.plugins.campaigns.models import CampaignRun

ADMIN = User("测试管理员", "admin")


@pytest.fixture
def owners(app):
    with app.session() as session, transaction(session):
        building = Building(project=Project(name="翠湖"), name="1栋")
        for number in range(12):
            home = Household(code=f"H{number:02d}", name=f"第{number}家", status="existing",
                             consent_marketing=True)  # fmt: skip
            home.purchases.append(
                Purchase(contract_no=f"C{number}", unit=Unit(building=building, code=f"{number}"),
                         purchase_date=dt.date(2019, 1, 1), amount=1_000_000,
                         handover_date=dt.date(2020, 1, 1))
            )  # fmt: skip
            session.add(home)


def _campaign(session, code, **schedule):
    return create_campaign(
        session, code, f"活动{code}", "loyalty", "短信", "{家庭}您好",
        normalise_rule(session, "loyalty"), **schedule,
    )  # fmt: skip


def _job_ids(app):
    return sorted(job["id"] for job in list_jobs(app))


def test_jobs_follow_the_campaigns_and_survive_a_restart(app, db_url, owners):
    with app.session() as session, transaction(session):
        _campaign(session, "WEEKLY", cron="0 9 * * 1")
        _campaign(session, "EVERY", every="12h")
        _campaign(session, "ONCE", at="2099-01-01 09:00")
        _campaign(session, "MANUAL")
    with app.session() as session, paused_scheduler(app) as scheduler:
        first = sync_jobs(scheduler, session)
    assert sorted(first.added) == [
        "campaign:EVERY", "campaign:ONCE", "campaign:WEEKLY", "coordination", "lifecycle",
        "sla_check", "sync", "warnings",
    ]  # fmt: skip
    before = {job["id"]: job["next_run"] for job in list_jobs(app)}
    app.dispose()

    restarted = App(db_url, user=ADMIN, builtins=BUILTIN_PLUGINS)
    try:
        after = {job["id"]: job["next_run"] for job in list_jobs(restarted)}
        assert after == before
        assert after["campaign:ONCE"] == dt.datetime(2099, 1, 1, 9, 0, tzinfo=local_zone())
        assert after["campaign:WEEKLY"].weekday() == 0 and after["campaign:WEEKLY"].hour == 9
        with restarted.session() as session, paused_scheduler(restarted) as scheduler:
            again = sync_jobs(scheduler, session)
        assert again.added == again.changed == again.removed == []
        assert {j["id"]: j["next_run"] for j in list_jobs(restarted)}["campaign:EVERY"] == (
            before["campaign:EVERY"]
        )
        with restarted.session() as session, transaction(session):
            set_active(session, "WEEKLY", False)
            found = session.scalar(select(func.count()).select_from(CampaignRun))
        assert found == 0
        with restarted.session() as session, paused_scheduler(restarted) as scheduler:
            paused = sync_jobs(scheduler, session)
        assert paused.removed == ["campaign:WEEKLY"]
        assert "campaign:WEEKLY" not in _job_ids(restarted)
    finally:
        restarted.dispose()


def _runs(app) -> int:
    with app.session() as session:
        return session.scalar(
            select(func.count())
            .select_from(CampaignRun)
            .where(CampaignRun.finished_at.is_not(None))
        )


def test_a_run_missed_several_times_is_run_once(app, owners):
    with app.session() as session, transaction(session):
        _campaign(session, "TENMIN", every="10m")
    with app.session() as session, paused_scheduler(app) as scheduler:
        sync_jobs(scheduler, session)
        # the scheduler was down for most of an hour: five or six ten-minute runs were missed
        scheduler.modify_job("campaign:TENMIN", next_run_time=utcnow() - dt.timedelta(minutes=55))
    scheduler = make_scheduler(app)
    use_app(app, scheduler)
    scheduler.start()
    try:
        deadline = time.monotonic() + 30
        while _runs(app) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # room for any repeat of the missed runs to show up
    finally:
        scheduler.shutdown(wait=True)
    assert _runs(app) == 1
    [job] = [job for job in list_jobs(app) if job["id"] == "campaign:TENMIN"]
    assert job["next_run"] > utcnow()  # moved on to the next ten minutes
    with app.session() as session:
        [run] = session.scalars(select(CampaignRun)).all()
    assert run.trigger == "scheduler" and run.audience == 12


def test_scheduler_commands_sync_list_and_run_for_a_while(app, owners, run):
    with app.session() as session, transaction(session):
        _campaign(session, "WEEKLY", cron="30 9 * * 1")
    empty = run("scheduler", "jobs", "--format", "json")
    assert empty.exit_code == 0 and json.loads(empty.stdout) == []
    ran = run("scheduler", "run", "--for", "0.5", "--format", "json")
    assert ran.exit_code == 0, ran.output
    assert "调度程序已停止" in ran.stderr
    assert json.loads(ran.stdout)[0]["jobs"] == (
        "campaign:WEEKLY、coordination、lifecycle、sla_check、sync、warnings"
    )
    jobs = json.loads(run("scheduler", "jobs", "--format", "json").stdout)
    assert sorted(job["id"] for job in jobs) == [
        "campaign:WEEKLY", "coordination", "lifecycle", "sla_check", "sync", "warnings",
    ]  # fmt: skip
    weekly = next(job for job in jobs if job["id"] == "campaign:WEEKLY")
    assert weekly["next_run"].endswith("T09:30:00+08:00") and weekly["name"] == "活动WEEKLY"
    table = run("scheduler", "jobs")
    assert "下次运行（本地时间）" in table.output and "campaign:WEEKLY" in table.output
    assert " 09:30" in table.output  # shown in the business zone, not the machine's
    denied = run("scheduler", "sync", as_="钱:analyst")
    assert denied.exit_code == 3 and "Traceback" not in denied.output


def test_a_campaign_job_runs_the_campaign_at_the_schedulers_now(app, owners):
    from crm.core.scheduler import execute

    with app.session() as session, transaction(session):
        _campaign(session, "WEEKLY", cron="0 9 * * 1")
    monday = dt.datetime(2026, 4, 27, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai
    summary = execute(app, "campaign:WEEKLY", monday)
    with app.session() as session:
        [run] = session.scalars(select(CampaignRun)).all()
    assert summary == f"活动 WEEKLY 执行（编号 {run.id}）：名单 12 户（本次新增 12）"
    assert run.trigger == "scheduler" and run.started_at == monday and run.audience == 12
