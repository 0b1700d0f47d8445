"""Improvement plans (持续改进): the periodic statistics per specialty show where requests go
wrong; each plan drawn from them names what will change, the figures behind it (period, team,
category, cause and the complaints counted), an owner and a due time, and is followed until
done with its outcome. Numbers read GJ, the local date of making and a sequence (GJ20260430-01).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.core.audit import current_user
from crm.core.clock import to_local
from crm.core.errors import CrmError, NotFound
from crm.core.models import utcnow
from crm.core.paging import Page, between, fetch
from crm.core.vocab import COMPLAINT_CATEGORIES, COMPLAINT_CAUSES, code_of
from crm.plugins.service.models import ImprovementPlan, Ticket, TicketCause
from crm.plugins.service.rules import number_head

PREFIX = "GJ"
STATUS = {"open": "进行中", "done": "已完成"}


def _count(
    session: Session,
    since: dt.datetime | None,
    until: dt.datetime | None,
    team_id: int | None,
    category: str | None,
    cause: str | None,
) -> int:
    """Customers' complaints in the period matching the plan's team, category and cause."""
    query = select(func.count(func.distinct(Ticket.id))).where(
        Ticket.ticket_type == "complaint", Ticket.origin == "customer"
    )
    if cause:
        query = query.join(TicketCause, TicketCause.ticket_id == Ticket.id).where(
            TicketCause.cause == cause
        )
    if team_id is not None:
        query = query.where(Ticket.team_id == team_id)
    if category:
        query = query.where(Ticket.category == category)
    if since is not None:
        query = query.where(Ticket.opened_at >= since)
    if until is not None:
        query = query.where(Ticket.opened_at < until)
    return int(session.scalar(query) or 0)


def add_plan(
    session: Session,
    what: str,
    owner: str,
    due_at: dt.datetime,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    team: str | None = None,
    category: str | None = None,
    cause: str | None = None,
    basis: str | None = None,
    now: dt.datetime | None = None,
) -> ImprovementPlan:
    """Record a plan: the complaints of its period, team, category and cause are counted now,
    so the plan keeps the figure it was drawn from."""
    from crm.plugins.service.dispatch import get_staff, get_team

    user = current_user(session)
    user.require("service.configure", "制定改进计划")
    now = now or utcnow()
    if not what or not what.strip():
        raise CrmError("请写明改进什么、怎么改（如“雨季前逐户检查地漏并培训安全员”）。")
    if due_at <= now:
        raise CrmError("改进计划的完成期限必须在将来。")
    if since is not None and until is not None and since >= until:
        raise CrmError("统计期间的起始日期必须早于截止日期。")
    person = get_staff(session, owner)
    found_team = get_team(session, team) if team else None
    category = code_of(COMPLAINT_CATEGORIES, category, "问题类别") if category else None
    cause = code_of(COMPLAINT_CAUSES, cause, "投诉原因") if cause else None
    counted = _count(session, since, until, found_team.id if found_team else None, category, cause)
    head = number_head(PREFIX, now)
    made = session.scalar(
        select(func.count(ImprovementPlan.id)).where(ImprovementPlan.number.like(f"{head}%"))
    )
    plan = ImprovementPlan(
        number=f"{head}{made + 1:02d}",
        what=what.strip(),
        since=since,
        until=until,
        team_id=found_team.id if found_team else None,
        category=category,
        cause=cause,
        basis_count=counted,
        basis=(basis or "").strip() or None,
        owner_id=person.id,
        due_at=due_at,
        status="open",
        created_by=user.name,
        created_at=now,
        updated_at=now,
    )
    session.add(plan)
    session.flush()
    return plan


def get_plan(session: Session, number: str) -> ImprovementPlan:
    plan = session.scalar(select(ImprovementPlan).where(ImprovementPlan.number == number.strip()))
    if plan is None:
        raise NotFound(f"找不到改进计划“{number}”：请用 crm improvement list 查看。")
    return plan


def complete_plan(
    session: Session, number: str, outcome: str, now: dt.datetime | None = None
) -> ImprovementPlan:
    """Done, with what changed."""
    current_user(session).require("ticket.handle", "完成改进计划")
    now = now or utcnow()
    plan = get_plan(session, number)
    if plan.status == "done":
        raise CrmError(f"改进计划 {plan.number} 已于 {to_local(plan.completed_at):%Y-%m-%d} 完成。")
    if not outcome or not outcome.strip():
        raise CrmError("请写明改进的结果（做了什么、效果如何）。")
    plan.status = "done"
    plan.completed_at = now
    plan.outcome = outcome.strip()
    plan.updated_at = now
    session.flush()
    return plan


def plan_row(plan: ImprovementPlan, now: dt.datetime) -> dict[str, Any]:
    period = None
    if plan.since or plan.until:
        start = f"{to_local(plan.since):%Y-%m-%d}" if plan.since else "…"
        end = f"{to_local(plan.until - dt.timedelta(seconds=1)):%Y-%m-%d}" if plan.until else "…"
        period = f"{start} 至 {end}"
    return {
        "number": plan.number,
        "what": plan.what,
        "period": period,
        "team": plan.team.name if plan.team else None,
        "category": plan.category,
        "cause": plan.cause,
        "basis_count": plan.basis_count,
        "basis": plan.basis,
        "owner": plan.owner.name,
        "due_at": plan.due_at,
        "overdue": plan.status == "open" and plan.due_at < now,
        "status": plan.status,
        "completed_at": plan.completed_at,
        "outcome": plan.outcome,
    }


def list_plans(
    session: Session,
    status: str | None = None,
    owner: str | None = None,
    overdue: bool = False,
    now: dt.datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page:
    """Plans, earliest due first, due in [since, until): one page of them, with how many
    match."""
    from crm.plugins.service.dispatch import get_staff

    now = now or utcnow()
    query = select(ImprovementPlan)
    if status:
        query = query.where(ImprovementPlan.status == code_of(STATUS, status, "计划状态"))
    if owner:
        query = query.where(ImprovementPlan.owner_id == get_staff(session, owner).id)
    if overdue:
        query = query.where(ImprovementPlan.status == "open", ImprovementPlan.due_at < now)
    query = query.where(*between(ImprovementPlan.due_at, since, until))
    query = query.order_by(ImprovementPlan.due_at, ImprovementPlan.id)
    return fetch(session, query, limit, offset, scalars=True).map(lambda plan: plan_row(plan, now))
