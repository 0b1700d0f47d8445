"""Plan assessment: for a feedback record, what each plan of the catalogue costs and what it
is expected to bring back, and the best of them.

    expected value = retention gain × lifetime value + referral gain × value of a referral − cost

The gains are the catalogue's (settings), scaled by the feedback's strength (0..1) and halved
when the plan does not suit the feedback's kind. The lifetime value is the household's from the
latest scoring run; a project-level feedback uses the project's mean (or the portfolio's). A
referral is worth a mean sale × the referral margin.

`assess_batch` is the `assess_feedback` hook: a batch costs a few queries whatever its size,
then pure Python per record.
"""

from __future__ import annotations

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
                ticket_type=spec.ticket_type,
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
        ticket_type=best.ticket_type,
        retention_gain=best.retention_gain,
        referral_gain=best.referral_gain,
    )
    return Assessment(feedback_id=feedback.id, options=[chosen, *options[1:]], best=chosen)


def referral_value(session: Session, settings: Settings) -> float:
    mean_sale = session.scalar(select(func.avg(Purchase.amount))) or 0.0
    return float(mean_sale) * settings.referral_margin


def _household_values(session: Session, codes: list[str]) -> dict[str, tuple[int, float | None]]:
    """code -> (household id, stored lifetime value or None) for the codes that exist."""
    found: dict[str, tuple[int, float | None]] = {}
    for start in range(0, len(codes), CHUNK):
        chunk = codes[start : start + CHUNK]
        rows = session.execute(
            select(Household.code, Household.id, HouseholdValue.clv)
            .outerjoin(HouseholdValue, HouseholdValue.household_id == Household.id)
            .where(Household.code.in_(chunk))
        ).all()
        found.update({code: (hid, value) for code, hid, value in rows})
    return found


def _project_means(session: Session) -> tuple[dict[str, float], float]:
    rows = session.execute(
        select(Project.name, func.avg(HouseholdValue.clv))
        .join(Project, Project.id == HouseholdValue.project_id)
        .group_by(Project.name)
    ).all()
    overall = session.scalar(select(func.avg(HouseholdValue.clv)))
    return {name: float(mean) for name, mean in rows}, float(overall or 0.0)


def assess_batch(session: Session, feedback: list[Feedback]) -> list[Assessment]:
    """Assess a batch of feedback records (the `assess_feedback` hook).

    One query reads the households' stored values. When nothing was scored yet the whole
    portfolio is scored and stored once; households added since the last run are computed
    on the spot (not stored)."""
    if not feedback:
        return []
    settings = load(session)
    if not settings.plans:
        return []
    if clv_module.latest_run(session) is None:
        clv_module.score(session)
    codes = sorted({f.household_code for f in feedback if f.household_code})
    stored = _household_values(session, codes)
    missing = [hid for hid, value in stored.values() if value is None]
    if missing:
        scores, _bg, _gg = clv_module.compute(session, household_ids=missing, settings=settings)
        computed = dict(
            zip(scores.portfolio.household_id.tolist(), scores.clv.tolist(), strict=True)
        )
        stored = {
            code: (hid, computed.get(hid) if value is None else value)
            for code, (hid, value) in stored.items()
        }
    project_means, overall = None, 0.0
    per_referral = referral_value(session, settings)
    assessments = []
    for record in feedback:
        found = stored.get(record.household_code) if record.household_code else None
        if found is not None and found[1] is not None:
            basis = Basis(found[1], "该户终身价值")
        else:
            if project_means is None:
                project_means, overall = _project_means(session)
            if record.project in project_means:
                basis = Basis(project_means[record.project], f"项目“{record.project}”户均终身价值")
            else:
                basis = Basis(overall, "全部客户户均终身价值")
        options = options_for(record, basis, per_referral, settings.plans)
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
            "ticket_type": plan.ticket_type,
            "reason": plan.reason,
        }
        for plan in assessment.options
    ]
