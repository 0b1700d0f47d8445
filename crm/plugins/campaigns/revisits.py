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
from sqlalchemy.orm import Session, aliased, selectinload

from crm.core import audit
from crm.core.chain import VisitAnswers
from crm.core.clock import add_months, day_start, local_today, to_local
from crm.core.errors import CrmError, NotFound
from crm.core.households import first_owner_id
from crm.core.models import Building, Household, Member, Project, Purchase, Unit, utcnow
from crm.core.outfiles import csv_writer, output_file, write_xlsx
from crm.core.paging import Page, between_days, fetch
from crm.core.privacy import Disclosure, audit_guard, commit_audit
from crm.core.sorting import natural_order
from crm.core.vocab import code_of
from crm.plugins.campaigns.models import (
    Rectification,
    Touchpoint,
    Visit,
    VisitAppointment,
    VisitOpinion,
)
from crm.plugins.campaigns.vocab import OPINION_KINDS

YEARS_BETWEEN_VISITS = 4
# A visit scored at or above this (1-5) is a satisfied customer: a follow-up this happy
# confirms the rectifications it checked; below it, they go back to be rectified again.
SATISFIED_FROM = 4
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
        .order_by(
            Project.name,
            *natural_order(Building.name),
            *natural_order(Unit.code),
            Household.code,
        )
    )
    if household_id is not None:
        query = query.where(Purchase.household_id == household_id)
    return query


def due_list(session: Session, month: str, limit: int | None = None, offset: int = 0) -> Page:
    """Every unit due its four-yearly visit in `month` (YYYY-MM), sorted by project, building
    and unit, with the owner's phone as the current user may see it (full views audited): one
    page of them (only its phones are read), with how many."""
    year, number = parse_month(month)
    query = _due_query(session, year, number)
    if query is None:
        return Page([], 0, offset, limit)
    rows = []
    with Disclosure(session, f"四年之约走访名单 {year:04d}-{number:02d}") as disclosure:
        found_rows = fetch(session, query, limit, offset)
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
    return Page(rows, found_rows.total, offset, limit)


def due_count(session: Session, month: str) -> int:
    """How many units are due their four-yearly visit in `month`, without anyone's details
    (so a login that may not read members' columns can count them too)."""
    year, number = parse_month(month)
    condition = _due_condition(session, year, number)
    if condition is None:
        return 0
    return session.scalar(
        select(func.count())
        .select_from(Purchase)
        .join(Household, Household.id == Purchase.household_id)
        .join(Unit, Unit.id == Purchase.unit_id)
        .join(Building, Building.id == Unit.building_id)
        .join(Project, Project.id == Building.project_id)
        .where(condition, Household.status == "existing")
    )


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


def _corrected_by(session: Session, visit_id: int) -> int | None:
    """The visit that corrects `visit_id` (a corrected visit is superseded by it), or None."""
    return session.scalar(select(Visit.id).where(Visit.corrects_visit_id == visit_id).limit(1))


def _due_unit(session: Session, household: Household, month: str, unit: str | None):
    """(label, due row) of the one unit of `household` due its visit in `month`."""
    year, number = parse_month(month)
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
    return label, due[0]


def _close_touchpoint(
    session: Session, purchase_id: int, label: str, done_at: dt.datetime, by: str, note: str
) -> int:
    """Close the 四年之约 lifecycle touchpoint of this unit and anniversary (the call a month
    before that agrees the visit); returns how many were closed (0 or 1)."""
    year, month = parse_month(label)
    first = dt.date(year, month, 1)
    points = session.scalars(
        select(Touchpoint).where(
            Touchpoint.kind == "four_year",
            Touchpoint.purchase_id == purchase_id,
            Touchpoint.done_at.is_(None),
            Touchpoint.due_on >= add_months(first, -2),
            Touchpoint.due_on < add_months(first, 1),
        )
    ).all()
    for point in points:
        point.done_at = done_at
        point.done_by = by
        point.outcome = "booked"
        point.note = note
    return len(points)


def appoint_visit(
    session: Session,
    code: str,
    month: str,
    at: dt.datetime,
    contact: str,
    unit: str | None = None,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> VisitAppointment:
    """Step 3.1: the time agreed with the customer's principal or property contact for the
    visit due in `month`. A new appointment for the same unit and month reschedules the visit
    (the earlier one stays on record); the 四年之约 touchpoint that asks for it is closed."""
    user = audit.current_user(session)
    user.require("household.write", "约定四年之约走访")
    household = _household(session, code)
    if not contact or not contact.strip():
        raise CrmError("请用 --contact 写明约定的客户联系人（主要负责人或物业联系人）。")
    label, due = _due_unit(session, household, month, unit)
    now = now or utcnow()
    visited = session.scalar(
        select(Visit.id)
        .where(
            Visit.purchase_id == due[0], Visit.due_month == label, Visit.follows_visit_id.is_(None)
        )
        .limit(1)
    )
    if visited is not None:
        raise CrmError(
            f"客户 {household.code} 在 {label} 的走访已经登记（走访 {visited}）：回访请直接登记。"
        )
    appointment = VisitAppointment(
        household_id=household.id,
        purchase_id=due[0],
        due_month=label,
        appointed_at=at,
        contact=contact.strip(),
        agreed_by=user.name,
        note=(note or "").strip() or None,
        created_at=now,
        updated_at=now,
    )
    session.add(appointment)
    session.flush()
    _close_touchpoint(
        session,
        due[0],
        label,
        now,
        user.name,
        f"已约定走访 {to_local(at):%Y-%m-%d %H:%M}（{appointment.contact}）",
    )
    session.flush()
    return appointment


def parse_opinion(text: str) -> tuple[str, str]:
    """`建议：增加充电桩` -> ("suggestion", "增加充电桩"); without a known kind before the colon
    the whole text is an opinion (意见)."""
    text = text or ""
    kind, sep, rest = text.replace("：", ":").partition(":")
    code = "opinion"
    if sep:
        for known, name in OPINION_KINDS.items():
            if kind.strip() in (known, name):
                code, text = known, rest
                break
    if not text.strip():
        raise CrmError("意见内容不能为空：请写成 类别：内容，如 建议：增加充电桩。")
    return code, text.strip()


def _chain(session: Session, start: int) -> list[int]:
    """`start` and every visit it follows up, back to the first visit of the loop."""
    ids, current = [], start
    while current is not None and current not in ids:
        ids.append(current)
        current = session.scalar(select(Visit.follows_visit_id).where(Visit.id == current))
    return ids


def _undo_follow_up(session: Session, visit: Visit) -> None:
    """Take back what a follow-up visit did to the rectifications it checked, before its
    correction checks them again: its confirmations, and the rectifications it sent back that
    have not been rectified again since."""
    for item in session.scalars(
        select(Rectification).where(Rectification.confirmed_visit_id == visit.id)
    ):
        item.confirmed_on = None
        item.confirmed_visit_id = None
    if visit.follows_visit_id is not None:
        for item in session.scalars(
            select(Rectification).where(
                Rectification.visit_id.in_(_chain(session, visit.follows_visit_id)),
                Rectification.rejected_on == visit.visited_on,
                Rectification.confirmed_on.is_(None),
            )
        ):
            item.rejected_on = None
    session.flush()


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
    opinion_items: list[tuple[str, str]] = (),
    rejects: list[int] = (),
) -> Visit:
    """Record a visit for the revisit due in `month`, with its opinions by kind and each
    nonconformity's named rectification owner and due date (3.2-3.3).

    A follow-up names the visit it follows up (3.6): when the customer is satisfied it
    confirms the rectifications done in that loop, except those in `rejects`; when not, every
    rectification done but unconfirmed goes back to be rectified again (3.5). Items not yet
    rectified stay open either way. A correction names the visit it corrects, which stays on
    record, superseded. The visit links the appointment agreed for it, closes the 四年之约
    touchpoint, and its satisfaction goes to satisfaction monitoring as a visit survey."""
    user = audit.current_user(session)
    user.require("household.write", "记录四年之约走访")
    household = _household(session, code)
    if not visitor or not visitor.strip():
        raise CrmError("请用 --visitor 写明走访人。")
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise CrmError("满意度请填 1 到 5 之间的整数。")
    label, due = _due_unit(session, household, month, unit)
    now = now or utcnow()
    today = local_today(now)
    if visited_on > today:
        raise CrmError(f"走访日期 {visited_on} 还没到：只能登记已经做过的走访。")
    for issue, owner, due_on in nonconformities:
        if not issue.strip() or not owner.strip():
            raise CrmError("每项不符合项都要写明问题和整改责任人。")
        if due_on < visited_on:
            raise CrmError(f"整改期限 {due_on} 早于走访日期 {visited_on}：请核对日期。")
    items = []
    for kind, text in opinion_items:
        if not (text or "").strip():
            raise CrmError("意见内容不能为空：请写成 类别：内容，如 建议：增加充电桩。")
        items.append((code_of(OPINION_KINDS, kind, "意见类别"), text.strip()))
    replaced = None
    if corrects is not None:
        replaced = _visit(session, corrects, household, "被更正的")
        # A corrected follow-up is still a follow-up of the same visit.
        follows = follows if follows is not None else replaced.follows_visit_id
    for linked, what in ((follows, "被回访的"), (corrects, "被更正的")):
        if linked is None:
            continue
        earlier = _visit(session, linked, household, what)
        newer = _corrected_by(session, linked)
        if newer is not None:
            raise CrmError(f"走访 {linked} 已被走访 {newer} 更正：请改用走访 {newer}。")
        if earlier.purchase_id != due[0] or earlier.due_month != label:
            raise CrmError(
                f"走访 {linked} 属于 {earlier.due_month} 的走访，不是这套房 {label} 的：请核对编号。"
            )
    if replaced is not None:
        _undo_follow_up(session, replaced)
    checked: list[Rectification] = []
    if follows is not None:
        chain = _chain(session, follows)
        checked = list(
            session.scalars(
                select(Rectification)
                .where(
                    Rectification.visit_id.in_(chain),
                    Rectification.done_on.is_not(None),
                    Rectification.rejected_on.is_(None),
                    Rectification.confirmed_on.is_(None),
                )
                .order_by(Rectification.id)
            )
        )
        for item in checked:
            if item.done_on > visited_on:
                raise CrmError(
                    f"整改项 {item.id} 于 {item.done_on} 完成，晚于这次回访 {visited_on}：请核对日期。"
                )
    unknown = set(rejects) - {item.id for item in checked}
    if unknown:
        raise CrmError(
            f"整改项 {min(unknown)} 不是这次回访要确认的已整改项：--reject 只能写被回访走访中已整改、尚未确认的整改项。"
        )
    visit = Visit(
        household_id=household.id,
        purchase_id=due[0],
        due_month=label,
        anniversary=int(due[7]),
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
        opinion_items=[VisitOpinion(kind=kind, text=text) for kind, text in items],
        # When it was typed in (visited_on is when the visit took place).
        created_at=now,
        updated_at=now,
    )
    session.add(visit)
    session.flush()
    satisfied = satisfaction is not None and satisfaction >= SATISFIED_FROM
    for item in checked:
        if item.id in rejects or (satisfaction is not None and not satisfied):
            item.rejected_on = visited_on
        elif satisfied:
            item.confirmed_on = visited_on
            item.confirmed_visit_id = visit.id
    appointment = session.scalar(
        select(VisitAppointment)
        .where(
            VisitAppointment.purchase_id == due[0],
            VisitAppointment.due_month == label,
            VisitAppointment.visit_id.is_(None),
        )
        .order_by(VisitAppointment.id.desc())
        .limit(1)
    )
    if replaced is not None:
        appointment = session.scalar(
            select(VisitAppointment).where(VisitAppointment.visit_id == replaced.id).limit(1)
        )
    elif follows is not None:
        appointment = None
    if appointment is not None:
        appointment.visit_id = visit.id
    _close_touchpoint(
        session,
        due[0],
        label,
        min(now, day_start(visited_on)),
        user.name,
        f"已走访（走访 {visit.id}）",
    )
    session.flush()
    if satisfaction is not None or corrects is not None:
        project_id = session.scalar(
            select(Building.project_id)
            .join(Unit, Unit.building_id == Building.id)
            .join(Purchase, Purchase.unit_id == Unit.id)
            .where(Purchase.id == due[0])
        )
        session.info["pm"].hook.households_visited(
            session=session,
            visits=[
                VisitAnswers(
                    household_id=household.id,
                    project_id=project_id,
                    at=min(now, day_start(visited_on) + dt.timedelta(hours=12)),
                    csat=satisfaction,
                    comment="；".join(
                        [text for _, text in items] + ([opinions] if opinions else [])
                    )
                    or None,
                    actor=visitor.strip(),
                    reference=f"camp_visit:{visit.id}",
                    replaces=f"camp_visit:{corrects}" if corrects is not None else None,
                    entered_at=now,
                )
            ],
        )
    return visit


def rectify(
    session: Session,
    rectification_id: int,
    measures: str,
    done_on: dt.date,
    now: dt.datetime | None = None,
) -> Rectification:
    """Mark a nonconformity rectified with the measures taken (3.3); one the customer was
    still not satisfied with on a follow-up is rectified again (3.5), the measures of every
    round kept."""
    audit.current_user(session).require("household.write", "登记整改")
    item = session.get(Rectification, rectification_id)
    if item is None:
        raise NotFound(f"整改项 {rectification_id} 不存在：请用 crm revisit show 查看编号。")
    newer = _corrected_by(session, item.visit_id)
    if newer is not None:
        raise CrmError(
            f"整改项 {rectification_id} 所在的走访 {item.visit_id} 已被走访 {newer} 更正：请按更正后的记录整改。"
        )
    if item.confirmed_on is not None:
        raise CrmError(
            f"整改项 {rectification_id} 已于 {item.confirmed_on} 经客户确认，无需再整改。"
        )
    if item.done_on is not None and item.rejected_on is None:
        raise CrmError(
            f"整改项 {rectification_id} 已于 {item.done_on} 完成，待回访确认；回访时客户仍不满意的，"
            "用 crm revisit record --follows 登记后再次整改。"
        )
    if not measures or not measures.strip():
        raise CrmError("请用 --measures 写明整改措施。")
    if done_on > local_today(now):
        raise CrmError(f"完成日期 {done_on} 还没到：只能登记已经完成的整改。")
    earliest = item.rejected_on or item.visit.visited_on
    if done_on < earliest:
        raise CrmError(
            f"完成日期 {done_on} 早于{'客户不满意的回访' if item.rejected_on else '走访'}日期 {earliest}：请核对日期。"
        )
    rounds = (item.rounds or 0) + 1
    item.measures = (
        measures.strip()
        if rounds == 1
        else f"{item.measures}；第 {rounds} 次整改：{measures.strip()}"
    )
    item.done_on = done_on
    item.rounds = rounds
    item.rejected_on = None
    session.flush()
    return item


def rectification_state(item: Rectification, today: dt.date) -> str:
    """open, overdue, redo, awaiting (rectified, not yet confirmed) or confirmed."""
    if item.confirmed_on is not None:
        return "confirmed"
    if item.rejected_on is not None:
        return "redo"
    if item.done_on is not None:
        return "awaiting"
    return "overdue" if item.due_on < today else "open"


def is_overdue(item: Rectification, today: dt.date) -> bool:
    """Past its due date and still to be done: never rectified, or sent back by the customer."""
    state = rectification_state(item, today)
    return state == "overdue" or (state == "redo" and item.due_on < today)


def rectification_dict(item: Rectification, today: dt.date) -> dict:
    return {
        "visit": item.visit_id,
        "id": item.id,
        "issue": item.issue,
        "owner": item.owner,
        "due_on": item.due_on,
        "measures": item.measures,
        "done_on": item.done_on,
        "rounds": item.rounds or 0,
        "state": rectification_state(item, today),
        "confirmed_on": item.confirmed_on,
    }


def visit_dict(
    visit: Visit,
    code: str,
    superseded_by: int | None = None,
    appointment: VisitAppointment | None = None,
    now: dt.datetime | None = None,
) -> dict:
    today = local_today(now)
    return {
        "id": visit.id,
        "household": code,
        "due_month": visit.due_month,
        "anniversary": visit.anniversary,
        "appointed_at": appointment.appointed_at if appointment else None,
        "contact": appointment.contact if appointment else None,
        "visited_on": visit.visited_on,
        "visitor": visit.visitor,
        "opinions": visit.opinions,
        "opinion_items": [{"kind": item.kind, "text": item.text} for item in visit.opinion_items],
        "out_of_scope": visit.out_of_scope,
        "satisfaction": visit.satisfaction,
        "follows": visit.follows_visit_id,
        "corrects": visit.corrects_visit_id,
        "superseded_by": superseded_by,
        "rectifications": [rectification_dict(item, today) for item in visit.rectifications],
    }


def describe_visit(session: Session, visit: Visit, code: str) -> dict:
    """visit_dict with the visit's appointment and the correction superseding it, if any."""
    appointment = session.scalar(
        select(VisitAppointment).where(VisitAppointment.visit_id == visit.id).limit(1)
    )
    return visit_dict(visit, code, _corrected_by(session, visit.id), appointment)


def household_visits(session: Session, code: str, now: dt.datetime | None = None) -> list[dict]:
    """All visits of a household, oldest first, each with its appointment, opinions and
    rectifications; a corrected visit names the visit that supersedes it."""
    household = _household(session, code)
    visits = session.scalars(
        select(Visit).where(Visit.household_id == household.id).order_by(Visit.id)
    ).all()
    corrections = {visit.corrects_visit_id: visit.id for visit in visits if visit.corrects_visit_id}
    appointments = {
        item.visit_id: item
        for item in session.scalars(
            select(VisitAppointment).where(
                VisitAppointment.household_id == household.id,
                VisitAppointment.visit_id.is_not(None),
            )
        )
    }
    return [
        visit_dict(
            visit, household.code, corrections.get(visit.id), appointments.get(visit.id), now
        )
        for visit in visits
    ]


def list_appointments(
    session: Session, month: str, limit: int | None = None, offset: int = 0
) -> Page:
    """Appointments agreed for the visits due in `month`, by time; a rescheduled one shows
    only its latest. One page of them, with how many."""
    year, number = parse_month(month)
    label = f"{year:04d}-{number:02d}"
    latest = (
        select(func.max(VisitAppointment.id))
        .where(VisitAppointment.due_month == label)
        .group_by(VisitAppointment.purchase_id)
    )
    query = (
        select(VisitAppointment, Household.code, Unit.code)
        .join(Household, Household.id == VisitAppointment.household_id)
        .join(Purchase, Purchase.id == VisitAppointment.purchase_id)
        .join(Unit, Unit.id == Purchase.unit_id)
        .where(VisitAppointment.id.in_(latest))
        .order_by(VisitAppointment.appointed_at, VisitAppointment.id)
    )
    return fetch(session, query, limit, offset).map(lambda row: _appointment_row(*row))


def _appointment_row(item: VisitAppointment, code: str, unit: str) -> dict:
    return {
        "id": item.id,
        "household": code,
        "unit": unit,
        "due_month": item.due_month,
        "appointed_at": item.appointed_at,
        "contact": item.contact,
        "agreed_by": item.agreed_by,
        "note": item.note,
        "visit": item.visit_id,
    }


def open_follow_ups(
    session: Session,
    now: dt.datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page:
    """Visits that still need work or a follow-up visit: any nonconformity not yet confirmed
    by the customer (open, overdue, to be rectified again, or rectified and awaiting the
    follow-up), whatever the visit's overall satisfaction; or a customer unsatisfied (1-3)
    whom nobody has followed up yet. A follow-up visit never clears the items of the visit it
    follows up: only their confirmation does. A corrected visit is superseded by its
    correction and is not listed. Visits made in [since, until) (local days): one page of
    them, with how many."""
    today = local_today(now)
    later = aliased(Visit)
    corrected = exists().where(later.corrects_visit_id == Visit.id)
    followed = exists().where(later.follows_visit_id == Visit.id)
    unconfirmed = exists().where(
        Rectification.visit_id == Visit.id, Rectification.confirmed_on.is_(None)
    )
    query = (
        select(Visit, Household.code, followed.label("followed"))
        .join(Household, Household.id == Visit.household_id)
        .options(selectinload(Visit.rectifications))
        .where(
            ~corrected,
            or_(unconfirmed, and_(Visit.satisfaction < SATISFIED_FROM, ~followed)),
            *between_days(Visit.visited_on, since, until),
        )
        .order_by(Visit.visited_on, Visit.id)
    )
    rows = []
    found = fetch(session, query, limit, offset)
    for visit, code, was_followed in found:
        states = [
            rectification_state(item, today)
            for item in visit.rectifications
            if item.confirmed_on is None
        ]
        reasons = [state for state in ("redo", "overdue", "open", "awaiting") if state in states]
        unhappy = visit.satisfaction is not None and visit.satisfaction < SATISFIED_FROM
        if unhappy and not was_followed:
            reasons.insert(0, "unsatisfied")
        rows.append(
            {
                "visit": visit.id,
                "household": code,
                "due_month": visit.due_month,
                "visited_on": visit.visited_on,
                "visitor": visit.visitor,
                "satisfaction": visit.satisfaction,
                "open_rectifications": len(states),
                "overdue": sum(is_overdue(item, today) for item in visit.rectifications),
                "reasons": reasons,
            }
        )
    return Page(rows, found.total, offset, limit)


REPORT_ITEMS = [
    ("month", "月份"),
    ("due", "到期应走访（套）"),
    ("appointed", "已约定走访（套）"),
    ("visited", "已走访（套）"),
    ("visit_rate", "走访率"),
    ("follow_up_visits", "回访次数"),
    ("rectifications", "不符合项"),
    ("rectified", "已整改"),
    ("confirmed", "客户已确认"),
    ("open", "未关闭的整改项"),
    ("overdue", "其中逾期"),
    ("redo", "其中需再次整改"),
    ("rated_units", "有满意度的房屋（套）"),
    ("satisfaction_before", "走访时平均满意度"),
    ("satisfaction_after", "整改回访后平均满意度"),
    ("satisfied_before", "走访时满意率"),
    ("satisfied_after", "整改回访后满意率"),
    ("unsatisfied_units", "仍不满意（套）"),
]


def monthly_report(session: Session, month: str, now: dt.datetime | None = None) -> dict:
    """Step 3.7: the month's visits compiled for the general manager's office. Covers the
    visits for units due in `month` (corrected visits replaced by their corrections): how many
    were due, agreed and visited, the follow-up visits, opinions counted by kind, the
    nonconformities raised and where they stand today (open, overdue, to be rectified again),
    and satisfaction before (on the first visit) and after (the latest score each unit gave,
    follow-ups included) over the same units."""
    year, number = parse_month(month)
    label = f"{year:04d}-{number:02d}"
    today = local_today(now)
    later = aliased(Visit)
    corrected = exists().where(later.corrects_visit_id == Visit.id)
    visits = session.scalars(
        select(Visit)
        .options(selectinload(Visit.rectifications))
        .where(Visit.due_month == label, ~corrected)
        .order_by(Visit.visited_on, Visit.id)
    ).all()
    ids = [visit.id for visit in visits]
    first = [visit for visit in visits if visit.follows_visit_id is None]
    items = [item for visit in visits for item in visit.rectifications]
    states = [rectification_state(item, today) for item in items]
    opinions = {kind: 0 for kind in OPINION_KINDS}
    if ids:
        for kind, count in session.execute(
            select(VisitOpinion.kind, func.count())
            .where(VisitOpinion.visit_id.in_(ids))
            .group_by(VisitOpinion.kind)
        ):
            opinions[kind] = count
    before: dict[int, int] = {}
    after: dict[int, int] = {}
    for visit in visits:  # oldest first: the last score a unit gave wins
        if visit.satisfaction is None:
            continue
        if visit.follows_visit_id is None:
            before.setdefault(visit.purchase_id, visit.satisfaction)
        after[visit.purchase_id] = visit.satisfaction
    rated = [pid for pid in after if pid in before]
    due = due_count(session, label)
    visited = len({visit.purchase_id for visit in first})

    def mean(scores: list[int]) -> float | None:
        return round(sum(scores) / len(scores), 2) if scores else None

    def share(scores: list[int]) -> float | None:
        return round(sum(s >= SATISFIED_FROM for s in scores) / len(scores), 4) if scores else None

    return {
        "month": label,
        "due": due,
        "appointed": session.scalar(
            select(func.count(func.distinct(VisitAppointment.purchase_id))).where(
                VisitAppointment.due_month == label
            )
        ),
        "visited": visited,
        "visit_rate": round(visited / due, 4) if due else None,
        "follow_up_visits": len(visits) - len(first),
        "opinions": opinions,
        "rectifications": len(items),
        "rectified": sum(item.done_on is not None for item in items),
        "confirmed": states.count("confirmed"),
        "open": len(states) - states.count("confirmed"),
        "overdue": sum(is_overdue(item, today) for item in items),
        "redo": states.count("redo"),
        "rated_units": len(rated),
        "satisfaction_before": mean([before[pid] for pid in rated]),
        "satisfaction_after": mean([after[pid] for pid in rated]),
        "satisfied_before": share([before[pid] for pid in rated]),
        "satisfied_after": share([after[pid] for pid in rated]),
        "unsatisfied_units": sum(after[pid] < SATISFIED_FROM for pid in after),
    }


def report_rows(report: dict) -> list[dict]:
    """The report as (item, value) rows, opinions one row per kind, for a table or a sheet."""
    rows = []
    for key, title in REPORT_ITEMS:
        rows.append({"item": title, "value": report[key]})
        if key == "follow_up_visits":
            rows.extend(
                {"item": f"意见建议：{OPINION_KINDS[kind]}", "value": count}
                for kind, count in report["opinions"].items()
            )
    for row in rows:
        if isinstance(row["value"], float) and row["item"].endswith("率"):
            row["value"] = f"{row['value']:.1%}"
    return rows


def export_report(session: Session, month: str, path: Path, now: dt.datetime | None = None) -> dict:
    """Write the month's report to an .xlsx file for the general manager's office (audited)."""
    if path.suffix.lower() != ".xlsx":
        raise CrmError(f"不支持导出为“{path.name}”：走访汇总请以 .xlsx 结尾。")
    audit.current_user(session).require("export", "导出走访汇总")
    report = monthly_report(session, month, now)
    with audit_guard():
        audit.record(
            session,
            "export",
            "camp_visits",
            detail=f"四年之约走访汇总 {report['month']}：走访 {report['visited']} 套",
        )
    commit_audit(session)
    with output_file(path) as part:
        write_xlsx(
            part,
            ["项目", "数值"],
            ([row["item"], row["value"]] for row in report_rows(report)),
            f"四年之约走访汇总{report['month']}",
        )
    return report
