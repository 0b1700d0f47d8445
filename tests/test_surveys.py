"""Surveys: revisits arriving in batches through the tickets_revisited hook, periodic surveys
and visit questionnaires; satisfaction = experience − expectation per aspect; range checks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from crm.core.chain import Revisit, TicketFacts
from crm.core.db import transaction
from crm.core.errors import CrmError, PermissionDenied
from crm.core.models import AuditEntry, Household, Project
from crm.core.security import User
from crm.plugins.satisfaction.models import Survey, SurveyAspect
from crm.plugins.satisfaction.surveys import parse_aspect, record_questionnaire

NOW = dt.datetime(2026, 4, 28, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def household(app):
    with app.session() as session, transaction(session):
        garden = Project(name="万科城市花园", city="深圳")
        session.add(Project(name="四季花城", city="深圳"))
        session.add(Household(code="H001", name="张伟家", status="existing", project=garden))
    with app.session() as session:
        return session.scalar(select(Household.id).where(Household.code == "H001"))


def _surveys(app) -> list[Survey]:
    with app.session() as session:
        found = session.scalars(select(Survey).order_by(Survey.id)).all()
        for survey in found:
            survey.aspects  # noqa: B018 - loaded while the session is open
        return found


def _facts(number: str, household_id: int, project_id: int | None = None) -> TicketFacts:
    return TicketFacts(
        number=number,
        ticket_type="repair",
        household_id=household_id,
        project_id=project_id,
        team="TECH",
        category="engineering",
        severity="general",
        closed_at=NOW,
    )


def test_revisits_arrive_in_one_batch_with_the_tickets_grouping(app, household):
    with app.session() as session:
        garden, park = (
            session.scalar(select(Project.id).where(Project.name == name))
            for name in ("万科城市花园", "四季花城")
        )
    revisits = [
        Revisit(
            ticket=_facts("WX20260428-0001", household),
            at=NOW - dt.timedelta(days=3),
            csat=4,
            nps=9,
            aspects={"维修质量": (8, 6), "响应速度": (7, 9)},
            comment=" 师傅很耐心 ",
            actor="李客服",
        ),
        Revisit(
            ticket=_facts("TS20260427-0002", household, park),
            at=NOW - dt.timedelta(hours=5),
            csat=2,
            nps=None,
            aspects={},
            comment=None,
            actor="王客服",
            channel="online",
        ),
    ]
    with app.session() as session, transaction(session):
        app.pm.hook.tickets_revisited(session=session, revisits=revisits)
    first, second = _surveys(app)
    assert (first.kind, first.ticket_number, first.team, first.category, first.channel) == (
        "revisit",
        "WX20260428-0001",
        "TECH",
        "engineering",
        "phone",
    )
    # The first ticket had no project: the household's project is used so KPIs still group it.
    assert (first.project_id, second.project_id) == (garden, park)
    # Each survey is dated at its revisit, not when the batch was written.
    assert (first.taken_at, second.taken_at) == (revisits[0].at, revisits[1].at)
    assert (first.csat, first.nps, first.taken_by, first.comment) == (4, 9, "李客服", "师傅很耐心")
    assert (first.gap_total, first.aspect_count) == (0, 2)
    gaps = {a.aspect: (a.expectation, a.experience, a.gap, a.household_id) for a in first.aspects}
    assert gaps == {"维修质量": (8, 6, -2, household), "响应速度": (7, 9, 2, household)}
    assert (second.csat, second.nps, second.channel, second.taken_by) == (
        2,
        None,
        "online",
        "王客服",
    )
    assert (second.gap_total, second.aspect_count, second.aspects) == (None, 0, [])
    with app.session() as session:
        audited = session.scalars(
            select(AuditEntry).where(AuditEntry.entity == "sat_surveys")
        ).all()
    assert [(a.action, a.changes["surveys"]) for a in audited] == [("create", 2)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"csat": 7}, "满意度评分（CSAT）应为 1 到 5"),
        ({"aspects": {"维修质量": (5, 11)}}, "“维修质量”的体验分应为 1 到 10"),
        ({"csat": None, "nps": None}, "没有任何答案"),
        ({"ticket": _facts("WX20260428-0009", 999_999)}, "WX20260428-0009 的客户家庭不存在"),
    ],
)
def test_one_invalid_revisit_refuses_the_batch_and_nothing_is_kept(app, household, change, message):
    good = Revisit(_facts("WX20260428-0001", household), NOW, 5, 10, {}, None, "李客服")
    bad = dataclasses.replace(good, **change)
    with pytest.raises(CrmError, match=message), app.session() as session, transaction(session):
        app.pm.hook.tickets_revisited(session=session, revisits=[good, bad])
    assert _surveys(app) == []


def test_an_analyst_may_not_record_revisits(app, household):
    revisit = Revisit(_facts("WX20260428-0001", household), NOW, 5, 10, {}, None, "李客服")
    with app.session() as session:
        session.info["user"] = User("赵分析", "analyst")
        with pytest.raises(PermissionDenied, match="登记满意度调查"):
            app.pm.hook.tickets_revisited(session=session, revisits=[revisit])


def test_a_visit_questionnaire_stores_the_gap_per_aspect(app, household):
    with app.session() as session, transaction(session):
        record_questionnaire(
            session,
            "H001",
            "visit",
            csat=2,
            aspects={"物业服务": (9, 4), "小区环境": (6, 6)},
            comment="楼道灯坏了一个月",
            project="四季花城",
            category="服务",
            channel="来访",
            now=NOW,
        )
    [survey] = _surveys(app)
    with app.session() as session:
        park = session.scalar(select(Project.id).where(Project.name == "四季花城"))
        stored = session.execute(
            select(SurveyAspect.aspect, SurveyAspect.gap).order_by(SurveyAspect.aspect)
        ).all()
        audited = session.scalar(
            select(func.count()).where(
                AuditEntry.entity == "sat_surveys", AuditEntry.action == "create"
            )
        )
    assert (survey.kind, survey.project_id, survey.category, survey.channel) == (
        "visit",
        park,
        "service",
        "visit",
    )
    assert survey.taken_at == NOW and survey.nps is None
    assert sorted(stored) == [("小区环境", 0), ("物业服务", -5)]
    assert audited == 1


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"csat": 0}, "满意度评分（CSAT）应为 1 到 5"),
        ({"csat": 6}, "满意度评分（CSAT）应为 1 到 5"),
        ({"nps": 11}, "推荐意愿（NPS）应为 0 到 10"),
        ({"nps": -1}, "推荐意愿（NPS）应为 0 到 10"),
        ({"aspects": {"维修质量": (0, 5)}}, "“维修质量”的期望分应为 1 到 10"),
        ({"aspects": {"维修质量": (5, 11)}}, "“维修质量”的体验分应为 1 到 10"),
        ({"aspects": {" ": (5, 5)}}, "名称不能为空"),
        ({}, "没有任何答案"),
    ],
)
def test_answers_out_of_range_are_refused_with_a_sentence(app, household, answers, message):
    with pytest.raises(CrmError, match=message), app.session() as session:
        record_questionnaire(session, "H001", "periodic", **answers)


def test_unknown_household_category_and_kind_are_refused(app, household):
    with app.session() as session:
        with pytest.raises(CrmError, match="找不到客户编号"):
            record_questionnaire(session, "H999", "periodic", csat=4)
        with pytest.raises(CrmError, match="不认识的投诉类别"):
            record_questionnaire(session, "H001", "periodic", csat=4, category="绿化")
        with pytest.raises(CrmError, match="自动登记"):
            record_questionnaire(session, "H001", "revisit", csat=4)


def test_an_analyst_may_not_record_surveys(app, household):
    with app.session() as session:
        session.info["user"] = User("赵分析", "analyst")
        with pytest.raises(PermissionDenied, match="登记满意度调查"):
            record_questionnaire(session, "H001", "periodic", csat=4)


def test_aspect_text_is_read_as_name_expectation_experience():
    assert parse_aspect("维修质量=8:6") == ("维修质量", (8, 6))
    assert parse_aspect("响应速度＝7：9") == ("响应速度", (7, 9))
    for bad in ("维修质量=8", "维修质量", "维修质量=好:差"):
        with pytest.raises(CrmError, match="名称=期望:体验"):
            parse_aspect(bad)


def test_cli_records_and_lists_a_periodic_survey(run, app, household):
    result = run(
        "survey", "record", "H001", "--csat", "5", "--nps", "10",
        "--aspect", "维修质量=8:9", "--aspect", "响应速度=9:7",
        "--comment", "满意", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert (row["household"], row["kind"], row["csat"], row["nps"], row["mean_gap"]) == (
        "H001",
        "定期调查",
        5,
        10,
        -0.5,
    )
    listed = run("survey", "list", "--household", "H001", "--format", "csv")
    assert listed.exit_code == 0, listed.output
    assert "H001" in listed.output and "维修质量 期望8 体验9 差距+1" in listed.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--csat", "9"], "1 到 5"),
        (["--csat", "很好"], "应为整数"),
        (["--aspect", "维修质量=8"], "名称=期望:体验"),
        (["--csat", "4", "--aspect", "维修质量=8:6", "--aspect", "维修质量=7:7"], "多次"),
    ],
)
def test_cli_bad_input_is_one_sentence_and_writes_nothing(run, app, household, args, message):
    result = run("survey", "record", "H001", *args)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert _surveys(app) == []
