"""Active retention (主动维系): the member club (like 万客会) and owner reward activities
(业主回馈活动), recorded on the household.

The current tier lives on the household (core `member_tier`); every enrolment and tier change
is one row of svc_club_enrollments, never deleted, so the card shows the whole history.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.core import vocab
from crm.core.audit import current_user
from crm.core.card import CardSection
from crm.core.clock import to_local
from crm.core.errors import CrmError, NotFound
from crm.core.households import get_household, project_id
from crm.core.models import Household, Project, utcnow
from crm.core.paging import Page, between, fetch
from crm.core.vocab import code_of
from crm.plugins.service.models import ActivitySignup, ClubEnrollment, RewardActivity

CLUB_TIERS = {code: zh for code, zh in vocab.MEMBER_TIERS.items() if code != "none"}


def _tier(text: str) -> str:
    return code_of(vocab.MEMBER_TIERS, text, "会员等级")


def _history(session: Session, household: Household, tier: str, note: str | None, now):
    entry = ClubEnrollment(
        household_id=household.id,
        tier=tier,
        previous_tier=household.member_tier,
        at=now,
        by=current_user(session).name,
        note=(note or "").strip() or None,
    )
    session.add(entry)
    household.member_tier = tier
    session.flush()
    return entry


def enrol(
    session: Session,
    code: str,
    tier: str = "standard",
    note: str | None = None,
    now: dt.datetime | None = None,
) -> ClubEnrollment:
    """Enrol a household in the member club at a tier (普通会员 by default)."""
    current_user(session).require("retention.manage", "办理入会")
    household = get_household(session, code)
    tier = _tier(tier)
    if tier == "none":
        raise CrmError("入会须选一个会员等级：普通会员、银卡、金卡或白金卡。")
    if household.member_tier != "none":
        current = vocab.label(vocab.MEMBER_TIERS, household.member_tier)
        raise CrmError(
            f"{household.code} 已是会员（{current}）：改等级请用 crm club tier {household.code}。"
        )
    return _history(session, household, tier, note or "入会", now or utcnow())


def change_tier(
    session: Session,
    code: str,
    tier: str,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> ClubEnrollment:
    """Move a member to another tier; 非会员 (none) records leaving the club."""
    current_user(session).require("retention.manage", "调整会员等级")
    household = get_household(session, code)
    tier = _tier(tier)
    if household.member_tier == "none":
        raise CrmError(f"{household.code} 还不是会员：请先用 crm club enrol 办理入会。")
    if tier == household.member_tier:
        raise CrmError(f"{household.code} 已是{vocab.label(vocab.MEMBER_TIERS, tier)}，无需调整。")
    return _history(session, household, tier, note, now or utcnow())


def list_members(
    session: Session,
    tier: str | None = None,
    project: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> Page:
    """Current members with the date they first joined and their last change: one page of
    them, with how many."""
    joined = (
        select(
            ClubEnrollment.household_id,
            func.min(ClubEnrollment.at).label("joined_at"),
            func.max(ClubEnrollment.at).label("changed_at"),
            func.count(ClubEnrollment.id).label("changes"),
        )
        .group_by(ClubEnrollment.household_id)
        .subquery()
    )
    query = (
        select(Household, Project.name, joined.c.joined_at, joined.c.changed_at, joined.c.changes)
        .outerjoin(joined, joined.c.household_id == Household.id)
        .outerjoin(Project, Household.project_id == Project.id)
        .where(Household.member_tier != "none")
    )
    if tier:
        query = query.where(Household.member_tier == _tier(tier))
    if project:
        query = query.where(Household.project_id == project_id(session, project))
    return fetch(session, query.order_by(Household.code), limit, offset).map(
        lambda row: _member_row(*row)
    )


def _member_row(household: Household, project_name, joined_at, changed_at, changes) -> dict:
    return {
        "code": household.code,
        "name": household.name,
        "project": project_name,
        "tier": household.member_tier,
        "joined_at": joined_at,
        "changed_at": changed_at,
        "changes": changes or 0,
    }


def club_history(session: Session, code: str) -> list[dict]:
    household = get_household(session, code)
    entries = session.scalars(
        select(ClubEnrollment)
        .where(ClubEnrollment.household_id == household.id)
        .order_by(ClubEnrollment.at, ClubEnrollment.id)
    ).all()
    return [_history_row(household, e) for e in entries]


def _history_row(household: Household, entry: ClubEnrollment) -> dict:
    return {
        "code": household.code,
        "at": entry.at,
        "previous_tier": entry.previous_tier,
        "tier": entry.tier,
        "by": entry.by,
        "note": entry.note,
    }


# --- owner reward activities ------------------------------------------------------------------


def _money(text: str | Decimal | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise CrmError(f"看不懂金额“{text}”：请写数字，如 5000。") from None
    if value < 0:
        raise CrmError("活动费用不能为负数。")
    return value


def create_activity(
    session: Session,
    name: str,
    held_at: dt.datetime,
    project: str | None = None,
    capacity: int | None = None,
    cost: Decimal | str | None = None,
) -> RewardActivity:
    current_user(session).require("retention.manage", "新建业主活动")
    if not name.strip():
        raise CrmError("请给出活动名称，如“2026 业主中秋游园会”。")
    if capacity is not None and capacity < 1:
        raise CrmError("名额至少为 1；不限名额时不要给出 --capacity。")
    activity = RewardActivity(
        name=name.strip(),
        held_at=held_at,
        project_id=project_id(session, project) if project else None,
        capacity=capacity,
        cost=_money(cost),
    )
    session.add(activity)
    session.flush()
    return activity


def get_activity(session: Session, activity_id: int, lock: bool = False) -> RewardActivity:
    query = select(RewardActivity).where(RewardActivity.id == activity_id)
    if lock:
        # Sign-ups for the last places serialise on the activity row (PostgreSQL).
        query = query.with_for_update()
    activity = session.scalar(query)
    if activity is None:
        raise NotFound(f"找不到编号为 {activity_id} 的业主活动：请用 crm activity list 查看。")
    return activity


def _counts():
    signed = func.count(ActivitySignup.id)
    attended = func.count(ActivitySignup.id).filter(ActivitySignup.attended.is_(True))
    return signed, attended


def list_activities(
    session: Session,
    project: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page:
    """Activities held in [since, until), the latest first, with their sign-ups and
    attendance: one page of them, with how many."""
    signed, attended = _counts()
    query = (
        select(RewardActivity, Project.name, signed, attended)
        .outerjoin(ActivitySignup, ActivitySignup.activity_id == RewardActivity.id)
        .outerjoin(Project, RewardActivity.project_id == Project.id)
        .group_by(RewardActivity.id, Project.name)
    )
    if project:
        query = query.where(RewardActivity.project_id == project_id(session, project))
    query = query.where(*between(RewardActivity.held_at, since, until))
    query = query.order_by(RewardActivity.held_at.desc(), RewardActivity.id.desc())
    return fetch(session, query, limit, offset).map(lambda row: _activity_row(*row))


def _activity_row(activity: RewardActivity, project: str | None, signed: int, attended: int):
    return {
        "id": activity.id,
        "name": activity.name,
        "project": project,
        "held_at": activity.held_at,
        "capacity": activity.capacity,
        "signed_up": signed,
        "attended": attended,
        "cost": activity.cost,
    }


def show_activity(session: Session, activity_id: int) -> dict:
    activity = get_activity(session, activity_id)
    rows = session.execute(
        select(ActivitySignup, Household.code, Household.name)
        .join(Household, ActivitySignup.household_id == Household.id)
        .where(ActivitySignup.activity_id == activity.id)
        .order_by(ActivitySignup.signed_up_at, ActivitySignup.id)
    ).all()
    project = session.get(Project, activity.project_id) if activity.project_id else None
    signups = [
        {
            "code": code,
            "name": name,
            "signed_up_at": signup.signed_up_at,
            "attended": signup.attended,
        }
        for signup, code, name in rows
    ]
    return _activity_row(
        activity,
        project.name if project else None,
        len(signups),
        sum(1 for s in signups if s["attended"]),
    ) | {"signups": signups}


def sign_up(
    session: Session, activity_id: int, code: str, now: dt.datetime | None = None
) -> ActivitySignup:
    """One sign-up per household, while places are left and before the activity starts."""
    current_user(session).require("retention.manage", "活动报名")
    now = now or utcnow()
    activity = get_activity(session, activity_id, lock=True)
    household = get_household(session, code)
    if now >= activity.held_at:
        raise CrmError(f"活动“{activity.name}”已经开始或结束，不能再报名。")
    existing = session.scalar(
        select(ActivitySignup.id).where(
            ActivitySignup.activity_id == activity.id,
            ActivitySignup.household_id == household.id,
        )
    )
    if existing is not None:
        raise CrmError(f"{household.code} 已报名“{activity.name}”：每户只报名一次。")
    if activity.capacity is not None:
        taken = session.scalar(
            select(func.count(ActivitySignup.id)).where(ActivitySignup.activity_id == activity.id)
        )
        if taken >= activity.capacity:
            raise CrmError(f"活动“{activity.name}”名额已满（{activity.capacity} 户）。")
    signup = ActivitySignup(
        activity_id=activity.id, household_id=household.id, signed_up_at=now, attended=None
    )
    session.add(signup)
    session.flush()
    return signup


def record_attendance(
    session: Session,
    activity_id: int,
    code: str,
    attended: bool = True,
    now: dt.datetime | None = None,
) -> ActivitySignup:
    """Mark whether a signed-up household came; only once the activity has begun."""
    current_user(session).require("retention.manage", "登记活动出席")
    now = now or utcnow()
    activity = get_activity(session, activity_id)
    household = get_household(session, code)
    if now < activity.held_at:
        raise CrmError(f"活动“{activity.name}”还没有开始，不能登记出席。")
    signup = session.scalar(
        select(ActivitySignup).where(
            ActivitySignup.activity_id == activity.id,
            ActivitySignup.household_id == household.id,
        )
    )
    if signup is None:
        raise CrmError(
            f"{household.code} 没有报名“{activity.name}”：请先用 crm activity signup 补登报名。"
        )
    signup.attended = attended
    session.flush()
    return signup


def retention_sections(session: Session, household: Household) -> list[CardSection]:
    """Card sections for club tier history and activities, only when there is something."""
    sections = []
    history = session.scalars(
        select(ClubEnrollment)
        .where(ClubEnrollment.household_id == household.id)
        .order_by(ClubEnrollment.at, ClubEnrollment.id)
    ).all()
    if history:
        sections.append(
            CardSection(
                "会员俱乐部",
                lines=[
                    ("当前等级", vocab.label(vocab.MEMBER_TIERS, household.member_tier)),
                    ("入会日期", to_local(history[0].at).date()),
                ],
                columns=["时间", "原等级", "新等级", "经办人", "说明"],
                rows=[
                    {
                        "时间": e.at,
                        "原等级": vocab.label(vocab.MEMBER_TIERS, e.previous_tier),
                        "新等级": vocab.label(vocab.MEMBER_TIERS, e.tier),
                        "经办人": e.by,
                        "说明": e.note,
                    }
                    for e in history
                ],
            )
        )
    activities = session.execute(
        select(RewardActivity, ActivitySignup.attended)
        .join(ActivitySignup, ActivitySignup.activity_id == RewardActivity.id)
        .where(ActivitySignup.household_id == household.id)
        .order_by(RewardActivity.held_at, RewardActivity.id)
    ).all()
    if activities:
        attended = sum(1 for _, came in activities if came)
        sections.append(
            CardSection(
                "业主回馈活动",
                lines=[("报名次数", len(activities)), ("出席次数", attended)],
                columns=["活动", "时间", "出席"],
                rows=[
                    {
                        "活动": a.name,
                        "时间": a.held_at,
                        "出席": "待登记" if came is None else ("出席" if came else "缺席"),
                    }
                    for a, came in activities
                ],
            )
        )
    return sections
