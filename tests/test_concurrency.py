"""Several processes at once on one database: starts of one campaign make one run, and
coordination cycles (which score lifetime values on their first assessment) wait for each
other instead of failing. Each thread has its own App, engine and connections, as a separate
`crm` process would, on the test's SQLite file or PostgreSQL schema."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
import traceback
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from crm.core.app import App
from crm.core.db import transaction
from crm.core.demo import build_demo
from crm.core.models import Household
from crm.core.security import User
from crm.plugins import BUILTIN_PLUGINS
from crm.plugins.campaigns import campaigns
from crm.plugins.campaigns.campaigns import (
    create_campaign,
    get_campaign,
    normalise_rule,
    run_campaign,
    target_households,
)
from crm.plugins.campaigns.models import CampaignContact, CampaignRun
from crm.plugins.coordination.cycle import run_cycle
from crm.plugins.coordination.models import Decision
from crm.plugins.profitability.models import HouseholdValue, ScoringRun
from crm.plugins.satisfaction.models import FeedbackRecord

NOW = dt.datetime(2026, 11, 2, 2, 0, tzinfo=dt.UTC)
N = 6


def together(db_url: str, user: User, work: Callable) -> tuple[list, list[str]]:
    """Run work(session) in N threads at once, each on an App of its own; returns the
    results and the tracebacks."""
    barrier = threading.Barrier(N)
    results, failures = [], []

    def one() -> None:
        own = App(db_url, user=user, builtins=BUILTIN_PLUGINS)
        try:
            with own.session() as session:
                session.scalar(select(1))  # connected before the race starts
                session.rollback()
                barrier.wait(timeout=20)
                results.append(work(session))
        except Exception:  # noqa: BLE001  a thread cannot raise into the test: kept for the assert
            failures.append(traceback.format_exc())
        finally:
            own.dispose()

    threads = [threading.Thread(target=one) for _ in range(N)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results, failures


@pytest.fixture
def demo(app):
    with app.session() as session, transaction(session):
        build_demo(session, households=150, seed=5, now=NOW)


def test_six_starts_of_a_new_campaign_make_one_run(app, demo, db_url, monkeypatch):
    """Six starts enter at once; some take longer to choose their households (a slower
    machine, a bigger rule) and come to open a run after the first has finished its list:
    they join that run, as they would an unfinished one."""
    choose = campaigns.target_households
    entered = itertools.count()

    def slow_target(session, campaign, now):
        time.sleep(0.15 * next(entered))
        return choose(session, campaign, now)

    monkeypatch.setattr(campaigns, "target_households", slow_target)
    with app.session() as session, transaction(session):
        create_campaign(
            session, "RACE", "一路同行", "loyalty", "短信", "{家庭}您好",
            normalise_rule(session, "loyalty"),
        )  # fmt: skip
    results, failures = together(
        db_url,
        User("外呼组", "manager"),
        lambda session: run_campaign(session, "RACE", now=NOW, batch_size=10),
    )
    assert not failures, failures[0]
    with app.session() as session:
        runs = session.scalars(select(CampaignRun)).all()
        target = target_households(session, get_campaign(session, "RACE"), NOW).household_ids
        listed = session.scalars(select(CampaignContact.household_id)).all()
    assert len(runs) == 1 and len(results) == N
    assert {r.run_id for r in results} == {runs[0].id}
    assert sorted(listed) == target and len(target) > 10  # each household once
    assert runs[0].finished_at is not None and runs[0].open_for_campaign is None
    assert all(r.audience == len(target) for r in results)
    # A start half a minute later still joins (a process slow to load); a start the next day
    # is a run of its own.
    monkeypatch.undo()
    with app.session() as session:
        again = run_campaign(session, "RACE", now=NOW + dt.timedelta(seconds=30))
        later = run_campaign(session, "RACE", now=NOW + dt.timedelta(days=1))
    assert again.run_id == runs[0].id and again.resumed and again.added == 0
    assert later.run_id != runs[0].id and not later.resumed


def test_six_coordination_cycles_at_once_wait_for_each_other(app, demo, db_url):
    # Pending warnings on 40 households: enough for every cycle to collect and assess some.
    with app.session() as session, transaction(session):
        for i, household in enumerate(session.scalars(select(Household.id).limit(40))):
            session.add(
                FeedbackRecord(
                    key=f"test:{household}", kind="repeat_complaint", household_id=household,
                    reason="三个月内两次投诉", strength=0.5 + i / 100, detected_at=NOW,
                )
            )  # fmt: skip
    with app.session() as session:
        pending = session.scalar(
            select(func.count())
            .select_from(FeedbackRecord)
            .where(FeedbackRecord.status == "pending")
        )
        assert session.scalar(select(func.count()).select_from(ScoringRun)) == 0
    assert pending == 40
    results, failures = together(
        db_url, User("调度员", "manager"), lambda session: run_cycle(session, batch=2, now=NOW)
    )
    assert not failures, failures[0]
    assert len(results) == N and sum(r.collected for r in results) == pending
    with app.session() as session:
        # The first assessment scored the portfolio once; the others waited and used it.
        assert session.scalar(select(func.count()).select_from(ScoringRun)) == 1
        values = session.scalars(select(HouseholdValue.household_id)).all()
        decisions = session.scalars(select(Decision.feedback_id)).all()
        left = session.scalar(
            select(func.count()).select_from(Decision).where(Decision.status == "collected")
        )
    assert len(values) == len(set(values)) > 0
    assert len(decisions) == len(set(decisions)) == pending and left == 0
