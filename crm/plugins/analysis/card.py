"""The analysis section of the tracking card: 购买与推荐概况."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, or_, select, union
from sqlalchemy.orm import Session

from crm.core.card import CardSection
from crm.core.clock import local_today
from crm.core.models import Household, Purchase, Referral


def months_between(earlier: dt.date, later: dt.date) -> int:
    """Whole months from one date to another (a month counts once its day is reached)."""
    months = (later.year - earlier.year) * 12 + later.month - earlier.month
    return months - 1 if later.day < earlier.day else months


def purchase_overview(
    session: Session, household: Household, today: dt.date | None = None
) -> CardSection:
    today = today or local_today()
    count, total, first, last = session.execute(
        select(
            func.count(Purchase.id),
            func.sum(Purchase.amount),
            func.min(Purchase.purchase_date),
            func.max(Purchase.purchase_date),
        ).where(Purchase.household_id == household.id)
    ).one()
    # A referral is known from the referral register or from a purchase's referrer, or both.
    referred = union(
        select(Referral.referred_household_id.label("hid")).where(
            Referral.referrer_household_id == household.id
        ),
        select(Purchase.household_id.label("hid")).where(
            Purchase.referrer_household_id == household.id
        ),
    ).subquery()
    referrals = session.scalar(select(func.count()).select_from(referred))
    referred_amount = session.scalar(
        select(func.sum(Purchase.amount)).where(
            or_(
                Purchase.referrer_household_id == household.id,
                Purchase.id.in_(
                    select(Referral.purchase_id).where(
                        Referral.referrer_household_id == household.id,
                        Referral.purchase_id.is_not(None),
                    )
                ),
            )
        )
    )
    return CardSection(
        "购买与推荐概况",
        lines=[
            ("购买次数", count),
            ("购买总额(元)", total or 0),
            ("首次购买日期", first),
            ("最近购买日期", last),
            ("距最近购买(月)", months_between(last, today) if last else None),
            ("推荐成交户数", referrals),
            ("被推荐客户成交总额(元)", referred_amount or 0),
        ],
    )


def segment_and_propensity(session: Session, household: Household) -> CardSection | None:
    """The household's segment in the latest run and its latest propensity scores, so the
    sales team sees on the card what campaigns will target it by; None before any analysis."""
    from crm.plugins.analysis.models import (
        HouseholdSegment,
        PropensityScore,
        SavedModel,
        Segment,
        SegmentRun,
    )

    lines: list[tuple[str, object]] = []
    run = session.scalar(select(SegmentRun).order_by(SegmentRun.id.desc()).limit(1))
    if run is not None:
        name = session.scalar(
            select(Segment.name)
            .join(
                HouseholdSegment,
                (HouseholdSegment.run_id == Segment.run_id)
                & (HouseholdSegment.label == Segment.label),
            )
            .where(HouseholdSegment.run_id == run.id, HouseholdSegment.household_id == household.id)
        )
        lines.append((f"客户分群（截至 {run.as_of}）", name or "未参与（当时尚未购买）"))
    for target, label in (("buy_again", "再次购买倾向"), ("refer", "推荐新客倾向")):
        found = session.execute(
            select(PropensityScore.score, PropensityScore.decile, PropensityScore.as_of, SavedModel)
            .join(SavedModel, SavedModel.id == PropensityScore.model_id)
            .where(SavedModel.kind == target, PropensityScore.household_id == household.id)
            .order_by(SavedModel.version.desc())
            .limit(1)
        ).first()
        if found is not None:
            score, decile, as_of, model = found
            lines.append(
                (
                    label,
                    f"{score:.1%}（第 {decile} 十分位，模型第 {model.version} 版，截至 {as_of}）",
                )
            )
    return CardSection("客户分群与倾向", lines=lines) if lines else None
