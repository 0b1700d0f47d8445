"""Plan assessment: the expected value of each plan, the best one with its one-line reason,
the batch hook against stored lifetime values, settings that change the choice, and
`crm profitability assess` through the satisfaction plugin's get_feedback hook."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, insert, select

from crm.core.chain import Feedback
from crm.core.models import Household, Project
from crm.plugins.profitability import plans
from crm.plugins.profitability.models import HouseholdValue, ScoringRun
from crm.plugins.profitability.settings import Settings, set_setting

NOW = dt.datetime(2026, 6, 30, 4, 0, tzinfo=dt.UTC)


def feedback(kind="broken_promise", strength=1.0, household=1, project=None, id_="7"):
    """A feedback record about household `household` (an id) or, without one, project
    `project` (an id)."""
    return Feedback(id_, household, "承诺未兑现", strength, f"satisfaction.{kind}", project)


def test_expected_value_of_each_plan_and_the_best():
    catalogue = [p for p in Settings.from_values({}).plans if p.scope == "household"]
    options = plans.options_for(
        feedback(), plans.Basis(100_000.0, "该户终身价值"), 50_000.0, catalogue
    )
    values = {plan.name: plan.expected_value for plan in options}
    # Suited plans (apology, compensation, escalation) take the full gains; the others half.
    assert values == {
        "经理督办": 0.08 * 100_000 + 0.02 * 50_000 - 1200,  # 7,800
        "经济补偿": 0.10 * 100_000 + 0.005 * 50_000 - 3000,  # 7,250
        "道歉回访": 0.04 * 100_000 + 0.01 * 50_000 - 200,  # 4,300
        "优先维修": 0.03 * 100_000 + 0.005 * 50_000 - 800,  # 2,450
        "忠诚礼品": 0.015 * 100_000 + 0.01 * 50_000 - 500,  # 1,500
        "电话回访": 0.005 * 100_000 + 0.0025 * 50_000 - 30,  # 595
    }
    assessment = plans.choose(feedback(), options)
    best = assessment.best
    assert best.name == "经理督办" and best.team == "customer_service"
    assert best.task == "supervision" and best.retention_gain == 0.08
    assert "\n" not in best.reason
    assert best.reason.startswith("建议经理督办（承诺未兑现，强度 1.00）：期望价值 +7,800 元最高")
    assert "高于次优的经济补偿（+7,250 元）" in best.reason
    assert "该户终身价值 100,000 元" in best.reason
    assert [plan.name for plan in assessment.options][:2] == ["经理督办", "经济补偿"]


def test_strength_scales_the_gains():
    catalogue = [p for p in Settings.from_values({}).plans if p.scope == "household"]
    weak = plans.options_for(
        feedback(strength=0.25), plans.Basis(100_000.0, "x"), 50_000.0, catalogue
    )
    escalation = next(plan for plan in weak if plan.name == "经理督办")
    assert escalation.retention_gain == pytest.approx(0.02)
    assert escalation.expected_value == pytest.approx(0.02 * 100_000 + 0.005 * 50_000 - 1200)
    # Weak feedback on a household of little value: the cheap phone call is best.
    cheap = plans.options_for(feedback(strength=0.25), plans.Basis(5_000.0, "x"), 0.0, catalogue)
    assert cheap[0].name == "电话回访"


def stored_values(session, values: dict[str, tuple[int, float]]) -> None:
    """A scoring run with given lifetime values: code -> (project id, clv)."""
    session.add_all([Project(id=1, name="翠湖花园"), Project(id=2, name="望江府")])
    session.flush()
    session.execute(
        insert(Household),
        [
            {"id": i, "code": code, "name": code, "project_id": project}
            for i, (code, (project, _)) in enumerate(values.items(), start=1)
        ],
    )
    run = ScoringRun(
        run_at=NOW,
        as_of=NOW.date(),
        settings={},
        households=len(values),
        total_clv=sum(v for _, v in values.values()),
        service_costs_known=True,
        run_by="test",
    )
    session.add(run)
    session.flush()
    zero = dict.fromkeys(
        (
            "purchase_margin",
            "property_revenue",
            "service_revenue",
            "referral_value",
            "after_sales_cost",
            "other_cost",
        ),
        0.0,
    )
    session.execute(
        insert(HouseholdValue),
        [
            {
                "run_id": run.id,
                "household_id": i,
                "project_id": project,
                "segment": "none",
                "stage": "handed_1_4",
                "expected_purchases": 0.0,
                "clv": clv,
                **zero,
            }
            for i, (project, clv) in enumerate(values.values(), start=1)
        ],
    )
    session.flush()


def test_batch_uses_stored_values_and_project_means(session):
    stored_values(session, {"H1": (1, 100_000.0), "H2": (1, 20_000.0), "H3": (2, 60_000.0)})
    session.add(Household(id=4, code="NEW", name="新客户", project_id=2))  # not in the run
    session.flush()
    batch = [
        feedback(household=1, id_="a"),
        feedback(household=None, project=1, kind="project_drop", id_="b"),
        feedback(household=None, project=99, kind="project_drop", id_="c"),
        feedback(household=4, id_="d"),
    ]
    results = plans.assess_batch(session, batch, NOW)
    assert [r.feedback_id for r in results] == ["a", "b", "c", "d"]
    assert "该户终身价值 100,000 元" in results[0].best.reason
    # A project's feedback is answered by the project plans, valued for all its households.
    assert "项目“翠湖花园”2 户终身价值合计 120,000 元" in results[1].best.reason
    assert {p.name for p in results[1].options} == {"项目整改", "业主恳谈会"}
    assert results[1].best.task == "improvement"
    assert "全部客户户均终身价值 60,000 元" in results[2].best.reason
    # Computed on the spot: no purchases, no fits, no service: nothing but zero.
    assert "该户终身价值 0 元" in results[3].best.reason
    assert "项目整改" not in {p.name for p in results[3].options}
    assert plans.assess_batch(session, [], NOW) == []
    # Nothing was stored for the new household: the run is left as it was.
    assert session.scalar(select(func.count()).select_from(HouseholdValue)) == 3


def test_first_assessment_scores_the_portfolio(session):
    session.add(Household(code="H1", name="客户"))
    session.flush()
    household = session.scalar(select(Household.id))
    (result,) = plans.assess_batch(session, [feedback(household=household)], NOW)
    assert session.scalar(select(func.count()).select_from(ScoringRun)) == 1
    assert result.best.name


def test_settings_change_the_choice(session):
    stored_values(session, {"H1": (1, 100_000.0)})
    # No sales yet, so a referral is worth nothing: compensation 10,000 − 3,000 beats the
    # manager's 8,000 − 1,200.
    (before,) = plans.assess_batch(session, [feedback()], NOW)
    assert before.best.name == "经济补偿" and before.best.expected_value == 7000
    set_setting(session, "profitability.plans.compensation.cost", "3500")
    (dearer,) = plans.assess_batch(session, [feedback()], NOW)
    assert dearer.best.name == "经理督办" and dearer.best.expected_value == 6800
    set_setting(session, "plans.manager_escalation.enabled", "0")
    (without,) = plans.assess_batch(session, [feedback()], NOW)
    assert "经理督办" not in {plan.name for plan in without.options}
    assert without.best.name == "经济补偿" and without.best.cost == 3500


def test_cli_assess_reads_the_feedback_through_the_hook(app, run):
    from crm.plugins.satisfaction.models import FeedbackRecord

    with app.session() as session:
        stored_values(session, {"H1": (1, 100_000.0)})
        record = FeedbackRecord(
            key="broken_promise:1:x",
            kind="broken_promise",
            household_id=1,
            reason="承诺未兑现",
            strength=1.0,
        )
        session.add(record)
        session.commit()
        record_id = str(record.id)
    result = run("profitability", "assess", record_id, "--format", "json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["best"] == "经济补偿" and answer["feedback"] == record_id
    assert answer["options"][0]["best"] is True and len(answer["options"]) == 6
    table = run("profitability", "assess", record_id)
    assert table.stdout.strip().splitlines()[-1].startswith("建议经济补偿")
    missing = run("profitability", "assess", "99999")
    assert missing.exit_code == 4 and "找不到反馈记录" in missing.output
