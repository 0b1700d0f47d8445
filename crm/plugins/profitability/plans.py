"""Plan assessment: for a feedback record, what each plan of the catalogue costs and what it
is expected to bring back, and the best of them.

    expected value = retention gain × lifetime value + referral gain × value of a referral − cost

The gains are the catalogue's (settings), scaled by the feedback's strength (0..1) and halved
when the plan does not suit the feedback's kind. A household's feedback is answered by the
household plans, valued against the household's lifetime value from the latest scoring run
(the project's or the portfolio's mean when it has none); a project's feedback by the project
plans, valued against the lifetime value of all the project's households together. A referral
is worth a mean sale × the referral margin.

`assess_batch` is the `assess_feedback` hook: a batch costs a few queries whatever its size,
then pure Python per record.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.core.chain import Assessment, Feedback, Plan
from crm.core.models import Household, Project, Purchase
from crm.plugins.profitability import clv as clv_module
from crm.plugins.profitability.models import HouseholdValue
from crm.plugins.profitability.settings import FEEDBACK_KINDS, PlanSpec, Settings, load

# A plan that does not suit the kind of feedback still helps, but half as much.
OFF_KIND = 0.5
CHUNK = 900  # IN-list size well inside SQLite's limit on bound parameters


@dataclass(frozen=True)
class Basis:
    """What a feedback's plans are valued against, and how to say it."""

    clv: float
    label: str


def _kind(feedback: Feedback) -> str:
    return feedback.source.rsplit(".", 1)[-1]


def _money(value: float) -> str:
    return f"{value:,.0f} 元"


def options_for(
    feedback: Feedback, basis: Basis, referral_value: float, plans: tuple[PlanSpec, ...]
) -> list[Plan]:
    """Every plan of the catalogue valued for this feedback, best first."""
    kind = _kind(feedback)
    strength = min(1.0, max(0.0, float(feedback.strength)))
    options = []
    for spec in plans:
        factor = strength * (1.0 if kind in spec.suits else OFF_KIND)
        retention = min(1.0, spec.retention_gain * factor)
        referral = min(1.0, spec.referral_gain * factor)
        value = retention * basis.clv + referral * referral_value - spec.cost
        options.append(
            Plan(
                name=spec.name,
                cost=spec.cost,
                expected_value=round(value, 2),
                reason=(
                    f"挽留概率 +{retention:.1%} × {basis.label} {_money(basis.clv)}"
                    f" + 推荐概率 +{referral:.1%} × 每次推荐 {_money(referral_value)}"
                    f" − 成本 {_money(spec.cost)} = {value:+,.0f} 元"
                ),
                team=spec.team,
                task=spec.task,
                retention_gain=round(retention, 6),
                referral_gain=round(referral, 6),
            )
        )
    # Highest value first; on a tie the cheaper plan.
    options.sort(key=lambda plan: (-plan.expected_value, plan.cost))
    return options


def choose(feedback: Feedback, options: list[Plan]) -> Assessment:
    """The best option, its reason rewritten as the one line that explains the choice."""
    best = options[0]
    kind = FEEDBACK_KINDS.get(_kind(feedback), _kind(feedback))
    runner_up = (
        f"，高于次优的{options[1].name}（{options[1].expected_value:+,.0f} 元）"
        if len(options) > 1
        else ""
    )
    line = (
        f"建议{best.name}（{kind}，强度 {feedback.strength:.2f}）：期望价值 "
        f"{best.expected_value:+,.0f} 元最高{runner_up}；{best.reason}。"
    )
    chosen = Plan(
        name=best.name,
        cost=best.cost,
        expected_value=best.expected_value,
        reason=line,
        team=best.team,
        task=best.task,
        retention_gain=best.retention_gain,
        referral_gain=best.referral_gain,
    )
    return Assessment(feedback_id=feedback.id, options=[chosen, *options[1:]], best=chosen)


def referral_value(session: Session, settings: Settings) -> float:
    mean_sale = session.scalar(select(func.avg(Purchase.amount))) or 0.0
    return float(mean_sale) * clv_module.referral_margin(settings)


def _household_values(session: Session, ids: list[int]) -> dict[int, float | None]:
    """household id -> stored lifetime value (None when not scored) for the ids that exist."""
    found: dict[int, float | None] = {}
    for start in range(0, len(ids), CHUNK):
        rows = session.execute(
            select(Household.id, HouseholdValue.clv)
            .outerjoin(HouseholdValue, HouseholdValue.household_id == Household.id)
            .where(Household.id.in_(ids[start : start + CHUNK]))
        ).all()
        found.update({hid: value for hid, value in rows})
    return found


def _projects(session: Session) -> tuple[dict[int, tuple[str, float, int]], float]:
    """project id -> (name, mean lifetime value, households scored), and the portfolio mean."""
    rows = session.execute(
        select(Project.id, Project.name, func.avg(HouseholdValue.clv), func.count())
        .join(Project, Project.id == HouseholdValue.project_id)
        .group_by(Project.id, Project.name)
    ).all()
    overall = session.scalar(select(func.avg(HouseholdValue.clv)))
    return {pid: (name, float(mean), int(n)) for pid, name, mean, n in rows}, float(overall or 0.0)


def _basis(record: Feedback, value: float | None, projects, overall: float) -> Basis:
    if record.household_id is None and record.project_id in projects:
        name, mean, households = projects[record.project_id]
        return Basis(mean * households, f"项目“{name}”{households} 户终身价值合计")
    if value is not None:
        return Basis(value, "该户终身价值")
    if record.project_id in projects:
        name, mean, _ = projects[record.project_id]
        return Basis(mean, f"项目“{name}”户均终身价值")
    return Basis(overall, "全部客户户均终身价值")


def assess_batch(
    session: Session, feedback: list[Feedback], now: dt.datetime | None = None
) -> list[Assessment]:
    """Assess a batch of feedback records at `now` (the `assess_feedback` hook).

    One query reads the households' stored values. When nothing was scored yet the whole
    portfolio is scored and stored once, as of `now`; households added since the last run are
    computed on the spot (not stored)."""
    if not feedback:
        return []
    settings = load(session)
    by_scope = {
        scope: tuple(p for p in settings.plans if p.scope == scope)
        for scope in ("household", "project")
    }
    if not settings.plans:
        return []
    if clv_module.latest_run(session) is None:
        clv_module.score_if_never_scored(session, now=now)
    ids = sorted({f.household_id for f in feedback if f.household_id is not None})
    stored = _household_values(session, ids)
    missing = [hid for hid, value in stored.items() if value is None]
    if missing:
        scores, _bg, _gg = clv_module.compute(
            session, now=now, household_ids=missing, settings=settings
        )
        computed = dict(
            zip(scores.portfolio.household_id.tolist(), scores.clv.tolist(), strict=True)
        )
        stored = {
            hid: computed.get(hid) if value is None else value for hid, value in stored.items()
        }
    projects, overall = _projects(session)
    per_referral = referral_value(session, settings)
    assessments = []
    for record in feedback:
        scope = "project" if record.household_id is None else "household"
        if not by_scope[scope]:
            continue
        basis = _basis(record, stored.get(record.household_id), projects, overall)
        options = options_for(record, basis, per_referral, by_scope[scope])
        assessments.append(choose(record, options))
    return assessments


def assess_one(session: Session, feedback_id: str) -> Assessment:
    """One feedback record by id, looked up through the `get_feedback` hook."""
    from crm.core.errors import CrmError, NotFound

    pm = session.info.get("pm")
    if pm is None or not pm.hook.get_feedback.get_hookimpls():
        raise CrmError("没有插件提供反馈记录（满意度监测插件未启用）：无法评估。")
    record = pm.hook.get_feedback(session=session, feedback_id=str(feedback_id).strip())
    if record is None:
        raise NotFound(f"找不到反馈记录“{feedback_id}”：请用 crm satisfaction warnings 查看。")
    results = assess_batch(session, [record])
    if not results:
        raise CrmError("方案目录为空：请用 crm profitability settings set 启用至少一个方案。")
    return results[0]


def assessment_rows(assessment: Assessment) -> list[dict]:
    return [
        {
            "feedback": assessment.feedback_id,
            "best": plan is assessment.best,
            "plan": plan.name,
            "cost": plan.cost,
            "retention_gain": plan.retention_gain,
            "referral_gain": plan.referral_gain,
            "expected_value": plan.expected_value,
            "team": plan.team,
            "task": plan.task,
            "reason": plan.reason,
        }
        for plan in assessment.options
    ]
