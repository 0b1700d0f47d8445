"""The four-year revisit programme (四年之约): who is due a visit in a month, and the visits,
rectifications and follow-ups recorded for them (DOMAIN.md "Lifecycle", "Customer visits").

A unit handed over in month M of year Y is due in month M of Y+4, Y+8, …; the due list is one
SQL query whose handover-date ranges use the existing index on purchases.handover_date.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    cast,
    exists,
    extract,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased

from crm.core import audit
from crm.core.clock import local_today
from crm.core.errors import CrmError, NotFound
from crm.core.households import first_owner_id
from crm.core.models import Building, Household, Member, Project, Purchase, Unit, utcnow
from crm.core.outfiles import csv_writer, output_file, write_xlsx
from crm.core.privacy import Disclosure, audit_guard, commit_audit
from crm.plugins.campaigns.models import Rectification, Visit

YEARS_BETWEEN_VISITS = 4
DUE_COLUMNS = [
    ("project", "项目"),
    ("building", "楼栋"),
    ("unit", "房号"),
    ("household", "客户编号"),
    ("name", "客户名称"),
    ("handover_date", "交付日期"),
    ("anniversary", "第几次四年之约"),
    ("owner", "业主"),
    ("phone", "联系电话"),
    ("visited", "已走访"),
]


def parse_month(text: str) -> tuple[int, int]:
    """(year, month) of a YYYY-MM text."""
    found = re.fullmatch(r"\s*(\d{4})-(\d{1,2})\s*", text or "")
    if not found or not 1 <= int(found.group(2)) <= 12:
        raise CrmError(f"月份“{text}”无效：请写成 2026-12 这样的格式。")
    return int(found.group(1)), int(found.group(2))


def _handover_year(session: Session) -> ColumnElement:
    if session.get_bind().dialect.name == "postgresql":
        return cast(extract("year", Purchase.handover_date), Integer)
    return cast(func.strftime("%Y", Purchase.handover_date), Integer)


def _due_condition(session: Session, year: int, month: int) -> ColumnElement | None:
    """Handover in `month` of year-4, year-8, … down to the earliest handover: one range per
    anniversary, so the database walks the handover-date index instead of every purchase."""
    earliest = session.scalar(select(func.min(Purchase.handover_date)))
    if earliest is None:
        return None
    ranges = []
    back = year - YEARS_BETWEEN_VISITS
    while back >= earliest.year:
        start = dt.date(back, month, 1)
        end = dt.date(back + month // 12, month % 12 + 1, 1)
        ranges.append(and_(Purchase.handover_date >= start, Purchase.handover_date < end))
        back -= YEARS_BETWEEN_VISITS
    return or_(*ranges) if ranges else None


def _due_query(session: Session, year: int, month: int, household_id: int | None = None):
    condition = _due_condition(session, year, month)
    if condition is None:
        return None
    label = f"{year:04d}-{month:02d}"
    owner = aliased(Member)
    first_owner = first_owner_id()
    visited = exists().where(Visit.purchase_id == Purchase.id, Visit.due_month == label)
    query = (
        select(
            Purchase.id,
            Household.code,
            Household.name,
            Project.name,
            Building.name,
            Unit.code,
            Purchase.handover_date,
            ((year - _handover_year(session)) / YEARS_BETWEEN_VISITS).label("anniversary"),
            owner,
            visited.label("visited"),
        )
        .join(Household, Household.id == Purchase.household_id)
        .join(Unit, Unit.id == Purchase.unit_id)
        .join(Building, Building.id == Unit.building_id)
        .join(Project, Project.id == Building.project_id)
        .outerjoin(owner, owner.id == first_owner)
        .where(condition, Household.status == "existing")
        .order_by(Project.name, Building.name, Unit.code, Household.code)
    )
    if household_id is not None:
        query = query.where(Purchase.household_id == household_id)
    return query


def due_list(session: Session, month: str) -> list[dict]:
    """Every unit due its four-yearly visit in `month` (YYYY-MM), sorted by project, building
    and unit, with the owner's phone as the current user may see it (full views audited)."""
    year, number = parse_month(month)
    query = _due_query(session, year, number)
    if query is None:
        return []
    rows = []
    with Disclosure(session, f"四年之约走访名单 {year:04d}-{number:02d}") as disclosure:
        found_rows = session.execute(query).all()
        phones = disclosure.members([found[8] for found in found_rows])
        for found, shown in zip(found_rows, phones, strict=True):
            _pid, code, name, project, building, unit, handover, nth, member, visited = found
            rows.append(
                {
                    "project": project,
                    "building": building,
                    "unit": unit,
                    "household": code,
                    "name": name,
                    "handover_date": handover,
                    "anniversary": int(nth),
                    "owner": member.name if member else None,
                    "phone": shown["phone"],
                    "visited": bool(visited),
                }
            )
    return rows


def due_count(session: Session, month: str) -> int:
    """How many units are due their four-yearly visit in `month`, without anyone's details."""
    year, number = parse_month(month)
    query = _due_query(session, year, number)
    if query is None:
        return 0
    return session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))


def export_due_list(session: Session, month: str, path: Path) -> int:
    """Write the due list to a .csv or .xlsx file for the visit teams; returns the row count."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise CrmError(f"不支持导出为“{path.name}”：文件名请以 .csv 或 .xlsx 结尾。")
    audit.current_user(session).require("export", "导出走访名单")
    rows = due_list(session, month)
    headers = [title for _, title in DUE_COLUMNS]

    def values(row: dict) -> list:
        return [
            ("是" if row[key] else "否") if key == "visited" else row[key] for key, _ in DUE_COLUMNS
        ]

    # The list's full views and the export are on record before the file gets a byte.
    with audit_guard():
        audit.record(
            session,
            "export",
            "camp_visits",
            detail=f"四年之约走访名单 {month.strip()}：{len(rows)} 行",
        )
    commit_audit(session)
    with output_file(path) as part:
        if suffix == ".csv":
            # utf-8-sig: Excel opens the Chinese text correctly only with the BOM.
            with part.open("w", encoding="utf-8-sig", newline="") as handle:
                writer = csv_writer(handle)
                writer.writerow(headers)
                writer.writerows(values(row) for row in rows)
        else:
            write_xlsx(part, headers, (values(row) for row in rows), f"四年之约{month.strip()}")
    return len(rows)


def _household(session: Session, code: str) -> Household:
    household = session.scalar(select(Household).where(Household.code == code.strip()))
    if household is None:
        raise NotFound(f"找不到客户编号“{code}”：请用 crm household search 查找。")
    return household


def _visit(session: Session, visit_id: int, household: Household, what: str) -> Visit:
    visit = session.get(Visit, visit_id)
    if visit is None or visit.household_id != household.id:
        raise NotFound(f"{what}走访记录 {visit_id} 不存在或不属于客户 {household.code}。")
    return visit


def record_visit(
    session: Session,
    code: str,
    month: str,
    visited_on: dt.date,
    visitor: str,
    opinions: str | None = None,
    out_of_scope: str | None = None,
    satisfaction: int | None = None,
    nonconformities: list[tuple[str, str, dt.date]] = (),
    unit: str | None = None,
    follows: int | None = None,
    corrects: int | None = None,
    now: dt.datetime | None = None,
) -> Visit:
    """Record a visit for the revisit due in `month`, with each nonconformity's named
    rectification owner and due date. A follow-up names the visit it follows up; a correction
    names the visit it corrects (the old record stays)."""
    user = audit.current_user(session)
    user.require("household.write", "记录四年之约走访")
    year, number = parse_month(month)
    household = _household(session, code)
    if not visitor or not visitor.strip():
        raise CrmError("请用 --visitor 写明走访人。")
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise CrmError("满意度请填 1 到 5 之间的整数。")
    query = _due_query(session, year, number, household.id)
    due = session.execute(query).all() if query is not None else []
    label = f"{year:04d}-{number:02d}"
    if unit is not None:
        due = [row for row in due if row[5] == unit.strip()]
    if not due:
        raise CrmError(
            f"客户 {household.code}{'的 ' + unit + ' ' if unit else ' '}在 {label} 没有到期的"
            "四年之约走访：请核对月份（交付月份每四年一次）。"
        )
    if len(due) > 1:
        units = "、".join(row[5] for row in due)
        raise CrmError(
            f"客户 {household.code} 在 {label} 有多套房到期（{units}）：请用 --unit 指定。"
        )
    now = now or utcnow()
    today = local_today(now)
    if visited_on > today:
        raise CrmError(f"走访日期 {visited_on} 还没到：只能登记已经做过的走访。")
    for issue, owner, due_on in nonconformities:
        if not issue.strip() or not owner.strip():
            raise CrmError("每项不符合项都要写明问题和整改责任人。")
        if due_on < visited_on:
            raise CrmError(f"整改期限 {due_on} 早于走访日期 {visited_on}：请核对日期。")
    for linked, what in ((follows, "被回访的"), (corrects, "被更正的")):
        if linked is not None:
            _visit(session, linked, household, what)
    visit = Visit(
        household_id=household.id,
        purchase_id=due[0][0],
        due_month=label,
        anniversary=int(due[0][7]),
        visited_on=visited_on,
        visitor=visitor.strip(),
        opinions=opinions,
        out_of_scope=out_of_scope,
        satisfaction=satisfaction,
        follows_visit_id=follows,
        corrects_visit_id=corrects,
        recorded_by=user.name,
        rectifications=[
            Rectification(
                issue=issue.strip(),
                owner=owner.strip(),
                due_on=due_on,
                created_at=now,
                updated_at=now,
            )
            for issue, owner, due_on in nonconformities
        ],
        # When it was typed in (visited_on is when the visit took place).
        created_at=now,
        updated_at=now,
    )
    session.add(visit)
    session.flush()
    return visit


def rectify(
    session: Session,
    rectification_id: int,
    measures: str,
    done_on: dt.date,
    now: dt.datetime | None = None,
) -> Rectification:
    """Mark a nonconformity rectified with the measures taken."""
    audit.current_user(session).require("household.write", "登记整改")
    item = session.get(Rectification, rectification_id)
    if item is None:
        raise NotFound(f"整改项 {rectification_id} 不存在：请用 crm revisit show 查看编号。")
    if item.done_on is not None:
        raise CrmError(
            f"整改项 {rectification_id} 已于 {item.done_on} 完成；客户仍不满意时请记录回访并登记新的整改项。"
        )
    if not measures or not measures.strip():
        raise CrmError("请用 --measures 写明整改措施。")
    if done_on > local_today(now):
        raise CrmError(f"完成日期 {done_on} 还没到：只能登记已经完成的整改。")
    if done_on < item.visit.visited_on:
        raise CrmError(f"完成日期 {done_on} 早于走访日期 {item.visit.visited_on}：请核对日期。")
    item.measures = measures.strip()
    item.done_on = done_on
    session.flush()
    return item


def visit_dict(visit: Visit, code: str) -> dict:
    return {
        "id": visit.id,
        "household": code,
        "due_month": visit.due_month,
        "anniversary": visit.anniversary,
        "visited_on": visit.visited_on,
        "visitor": visit.visitor,
        "opinions": visit.opinions,
        "out_of_scope": visit.out_of_scope,
        "satisfaction": visit.satisfaction,
        "follows": visit.follows_visit_id,
        "corrects": visit.corrects_visit_id,
        "rectifications": [
            {
                "id": item.id,
                "issue": item.issue,
                "owner": item.owner,
                "due_on": item.due_on,
                "measures": item.measures,
                "done_on": item.done_on,
            }
            for item in visit.rectifications
        ],
    }


def household_visits(session: Session, code: str) -> list[dict]:
    """All visits of a household, oldest first, each with its rectifications."""
    household = _household(session, code)
    visits = session.scalars(
        select(Visit).where(Visit.household_id == household.id).order_by(Visit.id)
    )
    return [visit_dict(visit, household.code) for visit in visits]


def open_follow_ups(session: Session) -> list[dict]:
    """Visits that still need a follow-up visit: the customer was unsatisfied (1-3), or
    nonconformities were found and nobody has yet confirmed with the customer. A visit
    followed up or corrected by a later record is settled by that record."""
    later = aliased(Visit)
    superseded = exists().where(
        or_(later.follows_visit_id == Visit.id, later.corrects_visit_id == Visit.id)
    )
    has_issues = exists().where(Rectification.visit_id == Visit.id)
    open_items = (
        select(func.count(Rectification.id))
        .where(Rectification.visit_id == Visit.id, Rectification.done_on.is_(None))
        .correlate(Visit)
        .scalar_subquery()
    )
    query = (
        select(Visit, Household.code, open_items)
        .join(Household, Household.id == Visit.household_id)
        .where(
            ~superseded,
            or_(Visit.satisfaction <= 3, and_(Visit.satisfaction.is_(None), has_issues)),
        )
        .order_by(Visit.visited_on, Visit.id)
    )
    return [
        {
            "visit": visit.id,
            "household": code,
            "due_month": visit.due_month,
            "visited_on": visit.visited_on,
            "visitor": visit.visitor,
            "satisfaction": visit.satisfaction,
            "open_rectifications": pending,
            "reason": "客户不满意，需再次整改并回访"
            if visit.satisfaction is not None
            else "整改后需回访确认客户满意度",
        }
        for visit, code, pending in session.execute(query)
    ]
