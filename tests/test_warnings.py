"""Early warning (客情预警): falling household satisfaction, a project's monthly drop, repeat
complaints and broken promises become feedback records once each, and are handed to a
coordinator through the collect_feedback hook exactly once."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from crm import hookimpl
from crm.core.chain import Feedback
from crm.core.db import transaction
from crm.core.models import Household, Project
from crm.plugins.satisfaction.models import FeedbackRecord, Survey, SurveyAspect
from crm.plugins.satisfaction.warnings import detect_warnings
from crm.plugins.service.models import Commitment, Ticket

NOW = dt.datetime(2026, 4, 20, 4, 0, tzinfo=dt.UTC)
HANDED = NOW + dt.timedelta(hours=1)  # when a coordination cycle takes the feedback


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


@pytest.fixture
def garden(app) -> dict[str, int]:
    """A project with three households: H1, H2, H3."""
    with app.session() as session, transaction(session):
        project = Project(name="城市花园")
        people = [
            Household(code=f"H{i}", name=name, status="existing", project=project)
            for i, name in enumerate(("张伟家", "李娜家", "王强家"), start=1)
        ]
        session.add_all(people)
        session.flush()
        return {"project": project.id} | {h.code: h.id for h in people}


def add_survey(app, household_id, project_id, taken, csat, aspects=()):
    with app.session() as session, transaction(session):
        session.add(
            Survey(
                kind="periodic",
                household_id=household_id,
                project_id=project_id,
                taken_at=taken,
                csat=csat,
                gap_total=sum(x - e for e, x in aspects) if aspects else None,
                aspect_count=len(aspects),
                aspects=[
                    SurveyAspect(household_id=household_id, aspect=f"方面{i}", expectation=e,
                                 experience=x, gap=x - e)
                    for i, (e, x) in enumerate(aspects)
                ],
            )
        )  # fmt: skip


def add_complaint(session, number, household_id, opened) -> Ticket:
    found = Ticket(
        number=number,
        ticket_type="complaint",
        channel="phone",
        household_id=household_id,
        summary="漏水",
        status="accepted",
        opened_at=opened,
    )
    session.add(found)
    return found


def detect(app, now=NOW) -> list[tuple[str, int | None, float]]:
    with app.session() as session, transaction(session):
        new = detect_warnings(session, now=now)
        return [(r.kind, r.household_id or r.project_id, r.strength) for r in new]


def records(app) -> list[FeedbackRecord]:
    with app.session() as session:
        return session.scalars(select(FeedbackRecord).order_by(FeedbackRecord.id)).all()


def test_a_household_whose_latest_survey_falls_is_warned_once(app, garden):
    h1 = garden["H1"]
    for days, csat in ((90, 5), (60, 4)):
        add_survey(app, h1, garden["project"], days_ago(days), csat)
    add_survey(app, h1, garden["project"], days_ago(2), 2)
    # H2 is steady: no warning.
    for days in (60, 2):
        add_survey(app, garden["H2"], garden["project"], days_ago(days), 4)
    assert detect(app) == [("satisfaction_drop", h1, 0.62)]
    [record] = records(app)
    assert record.reason == "客户最近一次满意度评分 2 分，明显低于此前平均 4.5 分。"
    assert record.status == "pending" and record.detected_at == NOW
    assert detect(app) == []  # idempotent: the same cause is not recorded twice
    assert len(records(app)) == 1


def test_experience_below_expectation_is_a_warning_even_without_earlier_surveys(app, garden):
    add_survey(app, garden["H3"], garden["project"], days_ago(1), 4, [(9, 5), (8, 6)])
    # An old survey outside the window does not warn however low it was.
    add_survey(app, garden["H2"], garden["project"], days_ago(200), 1, [(9, 1)])
    [(kind, household, strength)] = detect(app)
    assert (kind, household) == ("satisfaction_drop", garden["H3"])
    assert strength == pytest.approx(0.3 + 3 / 9 * 0.7, abs=0.01)
    assert "体验低于期望（平均差距 -3.0）" in records(app)[0].reason


def test_a_project_whose_monthly_rate_drops_is_warned(app, garden):
    march = dt.datetime(2026, 3, 10, 2, tzinfo=dt.UTC)
    april = dt.datetime(2026, 4, 10, 2, tzinfo=dt.UTC)
    homes = [garden["H1"], garden["H2"], garden["H3"]]
    for i in range(5):
        add_survey(app, homes[i % 3], garden["project"], march + dt.timedelta(hours=i), 5)
    for i, csat in enumerate((5, 5, 5, 2, 3)):
        add_survey(app, homes[i % 3], garden["project"], april + dt.timedelta(hours=i), csat)
    found = [row for row in detect(app) if row[0] == "project_drop"]
    assert found == [("project_drop", garden["project"], 0.8)]
    reason = next(r.reason for r in records(app) if r.kind == "project_drop")
    assert reason == "项目“城市花园”2026-04 满意率 60%，比 2026-03 的 100% 下降 40%。"


def test_a_small_month_does_not_raise_a_project_warning(app, garden):
    for day, csat in ((3, 5), (4, 5), (5, 5), (6, 5), (7, 5)):
        add_survey(app, garden["H1"], garden["project"], dt.datetime(2026, 3, day, tzinfo=dt.UTC), csat)  # fmt: skip
    add_survey(app, garden["H2"], garden["project"], days_ago(60), 1)
    add_survey(app, garden["H2"], garden["project"], dt.datetime(2026, 4, 2, tzinfo=dt.UTC), 1)
    assert [row for row in detect(app) if row[0] == "project_drop"] == []


def test_repeat_complaints_and_broken_promises_come_from_the_service_signals(app, garden):
    with app.session() as session, transaction(session):
        add_complaint(session, "TS20260101-0001", garden["H1"], days_ago(100))  # outside
        add_complaint(session, "TS20260405-0001", garden["H1"], days_ago(15))
        add_complaint(session, "TS20260418-0001", garden["H1"], days_ago(2))
        add_complaint(session, "TS20260410-0002", garden["H2"], days_ago(10))
        promised = add_complaint(session, "TS20260410-0003", garden["H3"], days_ago(10))
        session.flush()
        session.add_all(
            [
                Commitment(ticket_id=promised.id, what="三天内修好门禁", due_at=days_ago(5),
                           promised_by="李主管", status="broken", settled_at=days_ago(4)),
                Commitment(ticket_id=promised.id, what="当天回电", due_at=days_ago(9),
                           promised_by="李主管", status="kept", settled_at=days_ago(9)),
            ]
        )  # fmt: skip
    found = sorted(detect(app))
    assert found == [
        ("broken_promise", garden["H3"], 0.5),
        ("repeat_complaint", garden["H1"], 0.5),
    ]
    by_kind = {r.kind: r for r in records(app)}
    assert by_kind["repeat_complaint"].key == f"repeat_complaint:{garden['H1']}:TS20260418-0001"
    assert "投诉 2 次（TS20260405-0001、TS20260418-0001）" in by_kind["repeat_complaint"].reason
    assert "1 项对客户的承诺未兑现（TS20260410-0003）" in by_kind["broken_promise"].reason
    assert detect(app) == []
    # A third complaint is a new cause, and a stronger one.
    with app.session() as session, transaction(session):
        add_complaint(session, "TS20260420-0001", garden["H1"], days_ago(0.5))
    assert detect(app) == [("repeat_complaint", garden["H1"], 0.7)]


class Coordinator:
    """A test plugin standing in for coordination: it asks for feedback through the hook;
    its own collect_feedback answers nothing, as another source with nothing pending would."""

    def __init__(self, pm):
        self.pm = pm
        self.received: list[Feedback] = []

    @hookimpl
    def collect_feedback(self, session, limit, now):
        return []

    def take(self, app, limit=10) -> list[Feedback]:
        with app.session() as session, transaction(session):
            batches = self.pm.hook.collect_feedback(session=session, limit=limit, now=HANDED)
        got = [feedback for batch in batches for feedback in batch or []]
        self.received.extend(got)
        return got


@pytest.fixture
def coordinator(app):
    plugin = Coordinator(app.pm)
    app.pm.register(plugin, name="test-coordinator")
    yield plugin
    app.pm.unregister(plugin)


def test_feedback_is_handed_to_coordination_once_strongest_first(app, garden, coordinator):
    add_survey(app, garden["H1"], garden["project"], days_ago(1), 3, [(9, 7)])
    add_survey(app, garden["H2"], garden["project"], days_ago(1), 3, [(9, 2)])
    with app.session() as session, transaction(session):
        add_complaint(session, "TS20260415-0001", garden["H3"], days_ago(5))
        add_complaint(session, "TS20260416-0001", garden["H3"], days_ago(4))
    assert len(detect(app)) == 3
    first = coordinator.take(app, limit=2)
    assert [(f.household_code, f.source) for f in first] == [
        ("H2", "satisfaction.satisfaction_drop"),
        ("H3", "satisfaction.repeat_complaint"),
    ]
    # The chain works with ids: the household's and its project's.
    assert [f.household_id for f in first] == [garden["H2"], garden["H3"]]
    assert {f.project_id for f in first} == {garden["project"]}
    assert first[0].strength == pytest.approx(0.3 + 7 / 9 * 0.7, abs=0.01)
    assert first[0].project == "城市花园" and "体验低于期望" in first[0].reason
    rest = coordinator.take(app)
    assert [f.household_code for f in rest] == ["H1"]
    assert coordinator.take(app) == []
    handed = records(app)
    assert {r.status for r in handed} == {"handed"}
    assert all(r.handed_at == HANDED for r in handed)  # at the cycle's time, not the clock's
    assert sorted(f.id for f in coordinator.received) == sorted(str(r.id) for r in handed)


def test_warnings_command_detects_and_lists(run, app, garden, fixed_now):
    now = fixed_now  # `warnings --detect` looks back from the clock
    with app.session() as session, transaction(session):
        add_complaint(session, "TS-A", garden["H1"], now - dt.timedelta(days=3))
        add_complaint(session, "TS-B", garden["H1"], now - dt.timedelta(days=1))
    listed = run("satisfaction", "warnings", "--format", "json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    result = run("satisfaction", "warnings", "--detect", "--window", "7", "--format", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["kind"], row["household"], row["status"]) == ("repeat_complaint", "H1", "pending")
    table = run("satisfaction", "warnings").stdout
    assert "重复投诉" in table and "待处理" in table
    assert "新增客情预警 1 条" in result.stderr
    again = run("satisfaction", "warnings", "--detect", "--format", "csv")
    assert again.exit_code == 0 and "新增客情预警 0 条" in again.stderr
    refused = run("satisfaction", "warnings", "--detect", as_="赵分析:analyst")
    assert refused.exit_code != 0 and "无权生成客情预警" in refused.output
