"""The 一路同行 loyalty fund (忠诚度维修基金, the "6+2" step after 承担责任): each project's fund
is paid from the company's yearly profit and from owners' contributions, and spent on owner
activities, gifts and other care for owners.

A ledger of lines (svc_loyalty_fund_entries) per project, each naming its fund year and, for
a contribution or a gift, its household. The balance is money in less money out; spending is
refused when it would take the balance below zero (checked under a per-project lock, so two
spends at once cannot both pass).

What the fund spends is part of the cost to serve (costs.py): a line that paid for an
activity or a work order is costed there (the activity shared among those who attended, the
gift on its household); a gift to a household counts on that household; a project's other
spending is shared among the project's households; a household's own contribution is
subtracted from its cost. Summed over the households this is the company's own money the
fund has spent.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from crm.core.audit import current_user
from crm.core.clock import to_local
from crm.core.errors import CrmError, NotFound
from crm.core.households import get_household, project_id
from crm.core.models import Household, Project, utcnow
from crm.core.paging import Page, between, fetch
from crm.plugins.service.models import LoyaltyFundEntry, RewardActivity, WorkOrder
from crm.plugins.service.rules import FUND_KINDS

KINDS = FUND_KINDS
INFLOWS = ("allocation", "contribution")
SPENDING = {k: v for k, v in KINDS.items() if k not in INFLOWS}
# PostgreSQL advisory lock (key, project id) held by a spend until its transaction ends.
FUND_LOCK = 0x4C46


def _amount(value: Decimal | str | float | None) -> Decimal:
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, AttributeError):
        raise CrmError(f"看不懂金额“{value}”：请写正数，如 5000。") from None
    if not amount.is_finite() or amount <= 0:
        raise CrmError(f"金额须为正数，收到的是 {value}。")
    if amount != amount.quantize(Decimal("0.01")):
        raise CrmError(f"金额最多到分（两位小数），收到的是 {value}。")
    return amount


def _year(at: dt.datetime, year: int | None) -> int:
    if year is None:
        return to_local(at).year
    if not 1990 <= year <= 2200:
        raise CrmError(f"基金年度应为四位年份，如 2026，收到的是 {year}。")
    return year


def _entry(session: Session, **values) -> LoyaltyFundEntry:
    entry = LoyaltyFundEntry(by=current_user(session).name, **values)
    session.add(entry)
    session.flush()
    return entry


def allocate(
    session: Session,
    project: str,
    amount: Decimal | str,
    year: int | None = None,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> LoyaltyFundEntry:
    """Pay a project's fund its yearly allocation from profit (a manager's decision)."""
    current_user(session).require("fund.allocate", "拨付一路同行基金")
    now = now or utcnow()
    return _entry(
        session,
        project_id=project_id(session, project),
        kind="allocation",
        amount=_amount(amount),
        year=_year(now, year),
        at=now,
        note=(note or "").strip() or "年度利润拨付",
    )


def contribute(
    session: Session,
    code: str,
    amount: Decimal | str,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> LoyaltyFundEntry:
    """Record a household's contribution to its project's fund."""
    current_user(session).require("retention.manage", "登记客户出资")
    household = get_household(session, code)
    if household.project_id is None:
        raise CrmError(f"{household.code} 没有所属项目：请先用 crm household update 填写项目。")
    now = now or utcnow()
    return _entry(
        session,
        project_id=household.project_id,
        household_id=household.id,
        kind="contribution",
        amount=_amount(amount),
        year=_year(now, None),
        at=now,
        note=(note or "").strip() or None,
    )


def balance(session: Session, project: int) -> Decimal:
    """Money in less money out of one project's fund, all years."""
    e = LoyaltyFundEntry
    signed = case((e.kind.in_(INFLOWS), e.amount), else_=-e.amount)
    total = session.scalar(
        select(func.coalesce(func.sum(signed), 0)).where(e.project_id == project)
    )
    return Decimal(str(total or 0)).quantize(Decimal("0.01"))


def spend(
    session: Session,
    amount: Decimal | str | None = None,
    kind: str = "care",
    project: str | None = None,
    household: str | None = None,
    activity_id: int | None = None,
    work_order: str | None = None,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> LoyaltyFundEntry:
    """Draw on a project's fund for an activity, a gift or other care; refused beyond the
    balance. An activity's spending defaults to its cost and its project; a gift names the
    household (and may name the work order that delivered it)."""
    current_user(session).require("retention.manage", "动用一路同行基金")
    if kind not in SPENDING:
        raise CrmError(f"不认识的支出类型“{kind}”；可用：{'、'.join(SPENDING)}。")
    now = now or utcnow()
    values: dict = {"kind": kind, "at": now, "year": _year(now, None)}
    projects: set[int] = set()
    if project:
        projects.add(project_id(session, project))
    if household:
        found = get_household(session, household)
        values["household_id"] = found.id
        if found.project_id is not None:
            projects.add(found.project_id)
    if activity_id is not None:
        if kind != "activity":
            raise CrmError("只有业主活动（activity）支出才能关联活动编号。")
        activity = session.get(RewardActivity, activity_id)
        if activity is None:
            raise NotFound(f"找不到编号为 {activity_id} 的业主活动：请用 crm activity list 查看。")
        if session.scalar(
            select(LoyaltyFundEntry.id).where(LoyaltyFundEntry.activity_id == activity_id)
        ):
            raise CrmError(f"活动 {activity_id} 已从基金列支，不能重复列支。")
        values["activity_id"] = activity.id
        if activity.project_id is not None:
            projects.add(activity.project_id)
        if amount is None and activity.cost is not None:
            amount = activity.cost
    if work_order:
        order = session.scalar(select(WorkOrder).where(WorkOrder.number == work_order.strip()))
        if order is None:
            raise NotFound(f"找不到派工单“{work_order}”：请用 crm workorder list 查看。")
        values["work_order_id"] = order.id
        if order.household_id is not None:
            values.setdefault("household_id", order.household_id)
    if kind == "gift" and "household_id" not in values:
        raise CrmError("礼品支出须写明送给哪户：请给出 --household 客户编号。")
    if amount is None:
        raise CrmError("请给出支出金额（元）。")
    if len(projects) != 1:
        raise CrmError(
            "请用 --project 指明从哪个项目的基金列支。"
            if not projects
            else "客户、活动与 --project 分属不同项目：一笔支出只能从一个项目的基金列支。"
        )
    (pid,) = projects
    values["amount"] = _amount(amount)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(FUND_LOCK, pid)))
    left = balance(session, pid)
    if values["amount"] > left:
        name = session.get(Project, pid).name
        raise CrmError(
            f"{name}的一路同行基金余额只有 {left:,.2f} 元，不够支出 {values['amount']:,.2f} 元："
            "请先拨付（crm fund allocate）或减少金额。"
        )
    return _entry(session, project_id=pid, note=(note or "").strip() or None, **values)


def _filters(session: Session, project: str | None, year: int | None, household: str | None):
    e = LoyaltyFundEntry
    conditions = []
    if project:
        conditions.append(e.project_id == project_id(session, project))
    if year is not None:
        conditions.append(e.year == year)
    if household:
        conditions.append(e.household_id == get_household(session, household).id)
    return conditions


def project_balances(
    session: Session, project: str | None = None, year: int | None = None
) -> list[dict]:
    """Per project (and year when given): balance brought forward, allocated, contributed,
    spent by kind, and the balance."""
    e = LoyaltyFundEntry
    conditions = _filters(session, project, None, None)

    def total(kinds, when=None):
        condition = e.kind.in_(kinds) if when is None else e.kind.in_(kinds) & when
        return func.coalesce(func.sum(case((condition, e.amount), else_=0)), 0)

    in_year = None if year is None else e.year == year
    before = None if year is None else e.year < year
    upto = None if year is None else e.year <= year
    query = (
        select(
            Project.name,
            total(INFLOWS, before) - total(SPENDING, before) if year is not None else literal(0),
            total(("allocation",), in_year),
            total(("contribution",), in_year),
            *(total((kind,), in_year) for kind in SPENDING),
            total(INFLOWS, upto) - total(SPENDING, upto),
        )
        .join(Project, Project.id == e.project_id)
        .where(*conditions)
        .group_by(Project.name)
        .order_by(Project.name)
    )
    rows = []
    for name, opening, allocated, contributed, *spent, closing in session.execute(query):
        spent_by = dict(zip(SPENDING, spent, strict=True))
        rows.append(
            {
                "project": name,
                "year": year,
                "opening": float(opening or 0),
                "allocated": float(allocated),
                "contributed": float(contributed),
                **{f"spent_{kind}": float(value) for kind, value in spent_by.items()},
                "spent": float(sum(spent_by.values())),
                "balance": float(closing),
            }
        )
    return rows


def household_balances(
    session: Session,
    project: str | None = None,
    year: int | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> Page:
    """Per household: what it contributed and what the fund gave it directly (gifts and
    other care naming it), largest amounts first; one page of households, with how many."""
    e = LoyaltyFundEntry
    contributed = func.sum(case((e.kind == "contribution", e.amount), else_=0))
    received = func.sum(case((e.kind.in_(SPENDING), e.amount), else_=0))
    query = (
        select(Household.code, Household.name, Project.name, contributed, received)
        .join(Household, Household.id == e.household_id)
        .join(Project, Project.id == e.project_id)
        .where(*_filters(session, project, year, None))
        .group_by(Household.code, Household.name, Project.name)
        .order_by((contributed + received).desc(), Household.code)
    )
    return fetch(session, query, limit, offset).map(
        lambda row: {
            "household": row[0],
            "name": row[1],
            "project": row[2],
            "contributed": float(row[3]),
            "received": float(row[4]),
            "net": float(row[4]) - float(row[3]),
        }
    )


def ledger(
    session: Session,
    project: str | None = None,
    household: str | None = None,
    year: int | None = None,
    limit: int | None = 100,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page:
    """The fund's lines, newest first, of [since, until): one page of them, with how many."""
    e = LoyaltyFundEntry
    query = (
        select(e, Project.name, Household.code, WorkOrder.number)
        .join(Project, Project.id == e.project_id)
        .outerjoin(Household, Household.id == e.household_id)
        .outerjoin(WorkOrder, WorkOrder.id == e.work_order_id)
        .where(*_filters(session, project, year, household), *between(e.at, since, until))
        .order_by(e.at.desc(), e.id.desc())
    )
    return fetch(session, query, limit, offset).map(lambda row: _ledger_row(*row))


def _ledger_row(entry: LoyaltyFundEntry, project_name: str, code: str | None, number) -> dict:
    return {
        "id": entry.id,
        "at": entry.at,
        "year": entry.year,
        "project": project_name,
        "kind": entry.kind,
        "direction": "in" if entry.kind in INFLOWS else "out",
        "amount": float(entry.amount),
        "household": code,
        "activity_id": entry.activity_id,
        "work_order": number,
        "note": entry.note,
        "by": entry.by,
    }
