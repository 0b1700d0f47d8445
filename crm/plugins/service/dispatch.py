"""Dispatch (派工): teams, staff and work orders under the ticket's register number.

A ticket goes to the team that handles its repair item or category, then to the front-line
person of that team with the least open work; remedial and corrective actions, repairs and
revisits are work orders with due times. A job beyond a team's ability returns to the team's
supervisor as a new work order, never as "a phone number" (DOMAIN.md).

Work orders move their ticket: the first repair job takes a repair ticket into the work
(investigating), the last repair job done (fee signed for paid work) closes it and brings the
mandatory phone revisit, and the revisit work order is answered by the customer's revisit
(CSAT through satisfaction monitoring). A work order without a ticket is a task (tasks.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.core.audit import current_user
from crm.core.clock import as_local, to_local
from crm.core.errors import CrmError, NotFound
from crm.core.models import utcnow
from crm.core.paging import Page, between, fetch
from crm.core.vocab import TEAM_KINDS, code_of
from crm.plugins.service.models import ProjectManager, Staff, Team, Ticket, WorkOrder
from crm.plugins.service.rules import (
    CATEGORIES,
    CLOSED_STATUSES,
    LEVELS,
    MANAGER,
    PAUSED,
    SERVICE_AREAS,
    SUPERVISOR,
    WORK_ORDER_KINDS,
    WORK_ORDER_STATUS,
)
from crm.plugins.service.tickets import happened, record_event

STAFF_LEVELS = LEVELS
# The 100% phone revisit after a repair is due within this time of completion.
REVISIT_WITHIN = dt.timedelta(hours=24)

# Repair items the technical team takes (see repairs.WARRANTY_ITEMS); kept here so the default
# teams can be created without loading the repair rules.
TECHNICAL_ITEMS = [
    "structure",
    "waterproofing",
    "heating_cooling",
    "electrical",
    "plumbing",
    "equipment",
    "decoration",
    "intercom",
    "fittings",
    "sanitary_ware",
    "plaster",
    "flooring",
    "lamps_switches",
    "drain_blockage",
    "home_service",
]
DEFAULT_TEAMS = [
    ("service_center", "客服中心", "customer_service", ["service", "sales_management"]),
    ("engineering", "工程技术部", "technical", ["engineering", "design", *TECHNICAL_ITEMS]),
    ("security", "安全护卫部", "security", ["security", "access_control", "parking", "fire"]),
    ("cleaning", "保洁部", "cleaning", ["cleaning", "sanitation", "garbage"]),
    ("vendor_cleaning", "保洁外包公司", "vendor", ["landscaping", "pest_control"]),
]


def handles_labels() -> dict[str, str]:
    """Everything a team may handle, code -> label: complaint categories, warranty items and
    the service areas."""
    from crm.plugins.service.repairs import WARRANTY_ITEMS

    items = {code: item.label for code, item in WARRANTY_ITEMS.items()}
    return CATEGORIES | items | SERVICE_AREAS


def ensure_default_teams(session: Session) -> None:
    """The five default teams, only into a database that has no team yet."""
    if session.scalar(select(func.count(Team.id))):
        return
    for code, name, kind, handles in DEFAULT_TEAMS:
        session.add(Team(code=code, name=name, kind=kind, handles=handles, active=True))
    session.flush()


def parse_local_time(text: str) -> dt.datetime:
    """`2026-04-28 18:00` or `2026-04-28` (end of day) in the business zone, as aware UTC."""
    text = text.strip()
    for pattern, end_of_day in (("%Y-%m-%d %H:%M", False), ("%Y-%m-%d", True)):
        try:
            moment = dt.datetime.strptime(text, pattern)
        except ValueError:
            continue
        if end_of_day:
            moment = moment.replace(hour=23, minute=59)
        return as_local(moment).astimezone(dt.UTC)
    raise CrmError(f"看不懂时间“{text}”：请写成 2026-04-28 18:00 或 2026-04-28。")


def get_team(session: Session, code: str) -> Team:
    team = session.scalar(select(Team).where((Team.code == code.strip()) | (Team.name == code)))
    if team is None:
        known = "、".join(session.scalars(select(Team.code).order_by(Team.code)).all())
        raise NotFound(f"找不到团队“{code}”：现有团队 {known or '无'}（用 crm team list 查看）。")
    return team


def get_staff(session: Session, name: str) -> Staff:
    staff = session.scalar(select(Staff).where(Staff.name == name.strip()))
    if staff is None:
        raise NotFound(f"找不到员工“{name}”：请用 crm staff list 查看，或用 crm staff add 登记。")
    if not staff.active:
        raise CrmError(f"员工“{name}”已停用，不能再派工：请另选一人。")
    return staff


def get_work_order(session: Session, number: str) -> WorkOrder:
    order = session.scalar(select(WorkOrder).where(WorkOrder.number == number.strip()))
    if order is None:
        raise NotFound(f"找不到派工单“{number}”：请用 crm workorder list 查看。")
    return order


# --- teams and staff --------------------------------------------------------------------------


def add_team(session: Session, code: str, name: str, kind: str, handles: list[str]) -> Team:
    current_user(session).require("service.configure", "新增团队")
    code = code.strip()
    if not code or not name.strip():
        raise CrmError("团队需要代码和名称：如 crm team add greening --name 绿化组 --kind vendor。")
    if session.scalar(select(Team.id).where(Team.code == code)):
        raise CrmError(f"团队代码“{code}”已存在：请换一个代码。")
    team = Team(
        code=code,
        name=name.strip(),
        kind=code_of(TEAM_KINDS, kind, "团队类型"),
        # a label typed for a known code is stored as the code; any other word as typed
        handles=[_handled(h.strip()) for h in handles if h.strip()],
        active=True,
    )
    session.add(team)
    session.flush()
    return team


def _handled(word: str) -> str:
    codes = {label: code for code, label in handles_labels().items()}
    return codes.get(word, word)


def list_teams(session: Session) -> list[dict]:
    staff_count = (
        select(func.count(Staff.id))
        .where(Staff.team_id == Team.id, Staff.active.is_(True))
        .correlate(Team)
        .scalar_subquery()
    )
    rows = session.execute(select(Team, staff_count).order_by(Team.id)).all()
    return [
        {
            "code": team.code,
            "name": team.name,
            "kind": team.kind,
            "handles": "、".join(team.handles or []),
            "staff": count,
            "active": team.active,
        }
        for team, count in rows
    ]


def check_new_staff(session: Session, name: str, team_code: str, level: int = 1) -> Team:
    """Whether `add_staff` would take these (the user's permission, the name, the level, the
    team), without adding anyone; returns the team."""
    current_user(session).require("service.configure", "登记员工")
    name = name.strip()
    if not name:
        raise CrmError("请给出员工姓名。")
    if level not in STAFF_LEVELS:
        raise CrmError("级别只能是 1（一线）、2（主管）、3（经理）或 4（总经理）。")
    if session.scalar(select(Staff.id).where(Staff.name == name)):
        raise CrmError(f"员工“{name}”已登记：同名时请加区分，如 {name}（工程）。")
    return get_team(session, team_code)


def add_staff(
    session: Session,
    name: str,
    team_code: str,
    title: str,
    level: int = 1,
    skills: list[str] | None = None,
) -> Staff:
    team = check_new_staff(session, name, team_code, level)
    staff = Staff(
        name=name.strip(),
        team_id=team.id,
        title=title.strip() or STAFF_LEVELS[level],
        level=level,
        skills=[s.strip() for s in skills or [] if s.strip()],
        active=True,
    )
    session.add(staff)
    session.flush()
    return staff


def set_project_manager(session: Session, project: str, staff_name: str) -> ProjectManager:
    """Name the manager responsible for a project (项目负责人): the project's improvement tasks
    and supervision go to this person."""
    from crm.core.households import project_id

    current_user(session).require("service.configure", "指定项目负责人")
    found = project_id(session, project)
    staff = get_staff(session, staff_name)
    if staff.level < MANAGER:
        raise CrmError(
            f"{staff.name} 是{LEVELS[staff.level]}，项目负责人须是经理或总经理（级别 3 或 4）。"
        )
    current = session.scalar(select(ProjectManager).where(ProjectManager.project_id == found))
    if current is None:
        current = ProjectManager(project_id=found, staff_id=staff.id)
        session.add(current)
    else:
        current.staff_id = staff.id
    session.flush()
    return current


def project_managers(session: Session) -> list[dict]:
    from crm.core.models import Project

    rows = session.execute(
        select(Project.name, Staff.name, Staff.title)
        .join(ProjectManager, ProjectManager.project_id == Project.id)
        .join(Staff, Staff.id == ProjectManager.staff_id)
        .order_by(Project.name)
    )
    return [{"project": p, "manager": name, "title": title} for p, name, title in rows]


def open_load():
    """Open tickets owned plus open work orders assigned, per staff row (correlated)."""
    tickets = (
        select(func.count(Ticket.id))
        .where(Ticket.owner_id == Staff.id, Ticket.status.not_in(CLOSED_STATUSES))
        .correlate(Staff)
        .scalar_subquery()
    )
    orders = (
        select(func.count(WorkOrder.id))
        .where(WorkOrder.assignee_id == Staff.id, WorkOrder.status == "open")
        .correlate(Staff)
        .scalar_subquery()
    )
    return (tickets + orders).label("load")


def list_staff(session: Session, team_code: str | None = None) -> list[dict]:
    load = open_load()
    query = select(Staff, Team, load).outerjoin(Team, Staff.team_id == Team.id)
    if team_code:
        query = query.where(Staff.team_id == get_team(session, team_code).id)
    rows = session.execute(query.order_by(Team.id, Staff.level.desc(), Staff.name)).all()
    return [
        {
            "name": staff.name,
            "team": team.name if team else None,
            "title": staff.title,
            "level": staff.level,
            "skills": "、".join(staff.skills or []),
            "open_load": count,
            "active": staff.active,
        }
        for staff, team, count in rows
    ]


def least_loaded(session: Session, team: Team, level: int = 1) -> Staff | None:
    """The active staff of that level in the team with the least open work, ties by name."""
    load = open_load()
    return session.scalars(
        select(Staff)
        .where(Staff.team_id == team.id, Staff.level == level, Staff.active.is_(True))
        .order_by(load, Staff.name)
        .limit(1)
    ).first()


def has_skill(staff: Staff, skill: str) -> bool:
    return skill in (staff.skills or [])


def skilled(session: Session, skill: str, team: Team | None = None) -> Staff | None:
    """The least-loaded active front-line person with the skill: in the team when given,
    else in any team (a colleague's carpentry experience counts wherever they work)."""
    query = select(Staff).where(Staff.level == 1, Staff.active.is_(True))
    if team is not None:
        query = query.where(Staff.team_id == team.id)
    able = [p.id for p in session.scalars(query) if has_skill(p, skill)]
    if not able:
        return None
    load = open_load()
    return session.scalars(
        select(Staff).where(Staff.id.in_(able)).order_by(load, Staff.name).limit(1)
    ).first()


def team_for(session: Session, ticket: Ticket) -> Team | None:
    """The team that handles the ticket's repair item, else its category; the customer
    service centre (which takes every request first) when no team names either."""
    teams = session.scalars(
        select(Team).where(Team.active.is_(True)).order_by(Team.kind == "vendor", Team.id)
    ).all()
    for key in (ticket.repair_item, ticket.category):
        if key:
            for team in teams:
                if key in (team.handles or []):
                    return team
    return next((t for t in teams if t.kind == "customer_service"), None)


def assign_ticket(session: Session, ticket: Ticket, now: dt.datetime | None = None) -> Staff | None:
    """Give the ticket to its team and the least-loaded front-line person of that team."""
    now = now or utcnow()
    team = team_for(session, ticket)
    if team is None:
        raise CrmError(
            "还没有任何团队：请先用 crm team add 登记团队（或运行 crm init 建默认团队）。"
        )
    staff = least_loaded(session, team)
    ticket.team_id = team.id
    ticket.owner_id = staff.id if staff else None
    who = staff.name if staff else "（团队暂无一线人员，待指派）"
    record_event(session, ticket, "assign", f"派给 {team.name}：{who}", now)
    session.flush()
    return staff


# --- work orders ------------------------------------------------------------------------------


def _next_number(session: Session, ticket: Ticket) -> str:
    # Two dispatches on one ticket at once must not draw the same number (PostgreSQL row lock).
    session.execute(select(Ticket.id).where(Ticket.id == ticket.id).with_for_update())
    count = session.scalar(select(func.count(WorkOrder.id)).where(WorkOrder.ticket_id == ticket.id))
    return f"{ticket.number}-{count + 1:02d}"


def _check_repair_may_start(ticket: Ticket) -> None:
    if ticket.paid is None:
        raise CrmError(
            f"{ticket.number} 还没有做保修判断：请先用 crm repair check 确定免费还是收费，再派维修。"
        )
    if ticket.paid and not ticket.fee_rate:
        raise CrmError(
            f"{ticket.number} 是收费维修，开工前必须向业主说明收费标准："
            "请先用 crm repair quote 登记收费标准。"
        )


def create_work_order(
    session: Session,
    ticket: Ticket,
    kind: str,
    description: str,
    due_at: dt.datetime | None = None,
    team_code: str | None = None,
    assignee_name: str | None = None,
    now: dt.datetime | None = None,
    parent: WorkOrder | None = None,
    at: dt.datetime | None = None,
    skill: str | None = None,
) -> WorkOrder:
    """A dispatch notice under the ticket's number: to the given team or the ticket's team
    by category, and to the given person or the least-loaded one of that team. A job that
    needs a skill goes to someone who has it before load balancing: the team's front line,
    else (no team named) any team's; when no one has it, to the team's supervisor, who finds
    another way. The first repair job takes a repair ticket from its assessment into the
    work (investigating)."""
    from crm.plugins.service import tickets

    current_user(session).require("ticket.handle", "派工")
    now, at = happened(session, ticket, now, at)
    kind = code_of(WORK_ORDER_KINDS, kind, "派工类型")
    if not description.strip():
        raise CrmError("请写明派工内容（做什么）。")
    if kind == "repair":
        _check_repair_may_start(ticket)
    if due_at is not None and due_at <= at:
        raise CrmError("完成时限已过：请给一个将来的时间。")
    assignee = get_staff(session, assignee_name) if assignee_name else None
    if team_code:
        team = get_team(session, team_code)
    elif assignee is not None and assignee.team is not None:
        team = assignee.team
    else:
        team = team_for(session, ticket)
    if team is None:
        raise CrmError("还没有任何团队：请先用 crm team add 登记团队。")
    if assignee is not None and assignee.team_id != team.id:
        raise CrmError(f"{assignee.name} 不属于 {team.name}：请换人，或不指定团队。")
    skill = (skill or "").strip() or None
    if skill and assignee is not None and assignee.level == 1 and not has_skill(assignee, skill):
        raise CrmError(
            f"{assignee.name} 没有登记“{skill}”技能：请派给有此技能的人，或不指定处理人由系统挑选。"
        )
    if skill and assignee is None:
        owner = ticket.owner
        if (
            owner is not None and owner.active and owner.level == 1
            and owner.team_id == team.id and has_skill(owner, skill)
        ):  # fmt: skip
            assignee = owner
        else:
            assignee = skilled(session, skill, team)
            if assignee is None and not team_code:
                assignee = skilled(session, skill)
            if assignee is None:
                assignee = _supervisor_for(session, team)
            if assignee is not None and assignee.team is not None:
                team = assignee.team
    if assignee is None:
        # The person already answering for the ticket does its work, when in that team.
        owner = ticket.owner
        usable = owner is not None and owner.active and owner.team_id == team.id
        assignee = owner if usable and owner.level == 1 else least_loaded(session, team)
    order = WorkOrder(
        number=_next_number(session, ticket),
        ticket_id=ticket.id,
        household_id=ticket.household_id,
        project_id=ticket.project_id,
        origin=ticket.origin,
        kind=kind,
        description=description.strip(),
        team_id=team.id,
        assignee_id=assignee.id if assignee else None,
        status="open",
        due_at=due_at,
        parent_id=parent.id if parent else None,
        skill=skill,
        created_at=now,
        updated_at=now,
    )
    session.add(order)
    session.flush()
    who = assignee.name if assignee else "待指派"
    if skill:
        lacking = assignee is None or not has_skill(assignee, skill)
        who += f"（需“{skill}”技能{'，无人具备，交主管安排' if lacking else ''}）"
    due = f"，时限 {to_local(due_at):%Y-%m-%d %H:%M}" if due_at else ""
    record_event(
        session,
        ticket,
        "dispatch",
        f"派工单 {order.number}（{WORK_ORDER_KINDS[kind]}）→ {team.name}：{who}{due}",
        at,
        now,
    )
    if kind == "repair" and ticket.ticket_type == "repair" and ticket.status == "assessed":
        tickets.transition(session, ticket, "investigate", at, f"派出维修 {order.number}", now)
    return order


def _customer_service(session: Session) -> Team | None:
    return session.scalars(
        select(Team)
        .where(Team.kind == "customer_service", Team.active.is_(True))
        .order_by(Team.id)
        .limit(1)
    ).first()


def finish_work_order(
    session: Session, order: WorkOrder, result: str, at: dt.datetime, now: dt.datetime
) -> WorkOrder:
    """Mark one open work order done with its result (no routing: see complete_work_order)."""
    order.status = "done"
    order.completed_at = at
    order.completion_entered_at = now
    order.result = result.strip()
    if order.ticket is not None:
        record_event(
            session,
            order.ticket,
            "work_done",
            f"派工单 {order.number} 完成：{order.result}",
            at,
            now,
        )
    session.flush()
    return order


def complete_work_order(
    session: Session,
    number: str,
    result: str,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
    revisit: dict | None = None,
) -> WorkOrder:
    """Mark a work order done with its result, and move its ticket where the work says:
    - a repair job: when it is the ticket's last open one, the repair is finished, the ticket
      closes (the customer confirmed it on site; a paid job needs the fee signed first, see
      crm repair complete) and the mandatory phone revisit is dispatched, due within 24 hours;
    - a revisit job: it is the customer's revisit (`revisit`: csat, and nps, aspects,
      reopen_ticket, override as tickets.revisit takes them);
    - a task (no ticket): see tasks.complete_task."""
    from crm.plugins.service import tickets

    current_user(session).require("ticket.handle", "完成派工单")
    order = get_work_order(session, number)
    if order.status != "open":
        raise CrmError(
            f"派工单 {order.number} 的状态是“{WORK_ORDER_STATUS[order.status]}”，不能再完成。"
        )
    if not result.strip():
        raise CrmError("请写明处理结果。")
    ticket = order.ticket
    if ticket is None:
        raise CrmError(f"{order.number} 是任务，不是派工单：请用 crm task done 登记客户的答复。")
    now, at = happened(session, ticket, now, at)
    forwarded = session.scalars(
        select(WorkOrder.number).where(WorkOrder.parent_id == order.id, WorkOrder.status == "open")
    ).all()
    if forwarded:
        raise CrmError(
            f"{order.number} 已转派给 {'、'.join(forwarded)}，转派的工作还未完成：完成后主管才能关闭本单。"
        )
    if order.kind == "revisit" and ticket.status == "closed":
        if not revisit or revisit.get("csat") is None:
            raise CrmError(
                f"{order.number} 是回访：请登记客户的满意度（--csat 1-5，可加 --nps），"
                "不满意时加 --reopen 重新处理。"
            )
        tickets.revisit(session, ticket.number, comment=result, now=now, at=at, **revisit)
        return order
    if order.kind == "repair":
        if ticket.paid and not ticket.fee_signed_off:
            raise CrmError(
                f"{ticket.number} 是收费维修，完工须记录费用并由业主签字确认："
                "请用 crm repair complete 登记费用和签字人。"
            )
        if ticket.status == PAUSED:
            raise CrmError(
                f"{ticket.number} 正在等待客户：请先恢复处理（crm ticket step {ticket.number} "
                "resume），再登记维修完工。"
            )
    finish_work_order(session, order, result, at, now)
    if order.kind == "repair" and not tickets.open_work(session, ticket, ("repair",)):
        if ticket.ticket_type == "repair" and ticket.status == "investigating":
            tickets.close_after_repair(session, ticket, order.result, at, now)
        _ensure_revisit(session, ticket, at, now)
    session.flush()
    return order


def _ensure_revisit(
    session: Session, ticket: Ticket, at: dt.datetime, now: dt.datetime
) -> WorkOrder:
    pending = session.scalars(
        select(WorkOrder).where(
            WorkOrder.ticket_id == ticket.id,
            WorkOrder.kind == "revisit",
            WorkOrder.status == "open",
        )
    ).first()
    if pending is not None:
        return pending
    team = _customer_service(session) or team_for(session, ticket)
    return create_work_order(
        session,
        ticket,
        "revisit",
        "维修完成后电话回访：确认修复效果与收费无异议（维修后 100% 回访）。",
        due_at=at + REVISIT_WITHIN,
        team_code=team.code if team else None,
        now=now,
        at=at,
    )


def _supervisor_for(session: Session, team: Team | None) -> Staff | None:
    """The team's supervisor; failing that its lowest manager above; failing that the
    customer service centre's supervisor, which follows every request to closure."""
    candidates = [team] if team is not None else []
    centre = _customer_service(session)
    if centre is not None and centre not in candidates:
        candidates.append(centre)
    for candidate in candidates:
        level = session.scalar(
            select(func.min(Staff.level)).where(
                Staff.team_id == candidate.id,
                Staff.level >= SUPERVISOR,
                Staff.active.is_(True),
            )
        )
        if level is not None:
            return least_loaded(session, candidate, level)
    return None


def return_to_supervisor(
    session: Session,
    number: str,
    reason: str,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> WorkOrder:
    """A job beyond the team's ability goes back to its supervisor: the work order is marked
    returned with the reason and a new work order goes to the supervisor. Returns the new one."""
    current_user(session).require("ticket.handle", "退回派工单")
    order = get_work_order(session, number)
    if order.status != "open":
        raise CrmError(
            f"派工单 {order.number} 的状态是“{WORK_ORDER_STATUS[order.status]}”，只有处理中的才能退回。"
        )
    if order.ticket is None:
        raise CrmError(f"{order.number} 是任务：请在任务中写明结果（crm task done）。")
    now, at = happened(session, order.ticket, now, at)
    if not reason.strip():
        raise CrmError("请写明退回原因（为什么超出能力、业主需要什么），主管据此另想办法。")
    supervisor = _supervisor_for(session, order.team)
    if supervisor is None:
        where = order.team.name if order.team else "客服中心"
        raise CrmError(f"{where}没有登记主管，无法退回：请先用 crm staff add --level 2 登记主管。")
    order.status = "returned"
    order.returned_reason = reason.strip()
    order.returned_at = at
    session.flush()
    record_event(
        session,
        order.ticket,
        "work_returned",
        f"派工单 {order.number} 超出能力，退回主管 {supervisor.name}：{order.returned_reason}",
        at,
        now,
    )
    return create_work_order(
        session,
        order.ticket,
        order.kind,
        f"{order.description}\n【退回主管】{order.returned_reason}",
        due_at=order.due_at if order.due_at and order.due_at > at else None,
        team_code=supervisor.team.code if supervisor.team else None,
        assignee_name=supervisor.name,
        now=now,
        parent=order,
        at=at,
        skill=order.skill,
    )


def forward_work_order(
    session: Session,
    number: str,
    to_name: str,
    note: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> WorkOrder:
    """A supervisor passes a job they hold to someone who can do it (the colleague with the
    skill): a new work order continues it under the same register number, and the
    supervisor's own order stays open until the forwarded work is done, when the supervisor
    closes it (nothing is lost between them). Returns the new order."""
    current_user(session).require("ticket.handle", "转派派工单")
    order = get_work_order(session, number)
    if order.status != "open":
        raise CrmError(
            f"派工单 {order.number} 的状态是“{WORK_ORDER_STATUS[order.status]}”，只有处理中的才能转派。"
        )
    if order.ticket is None:
        raise CrmError(f"{order.number} 是任务，不能转派：请另建任务。")
    holder = order.assignee
    if holder is None or holder.level < SUPERVISOR:
        raise CrmError(
            f"{order.number} 由一线人员处理：超出能力时请退回主管（crm workorder return），由主管转派。"
        )
    target = get_staff(session, to_name)
    if target.id == holder.id:
        raise CrmError("不能转派给自己。")
    now, at = happened(session, order.ticket, now, at)
    record_event(
        session,
        order.ticket,
        "forward",
        f"{holder.name} 将派工单 {order.number} 转派给 {target.name}"
        + (f"：{note.strip()}" if note and note.strip() else ""),
        at,
        now,
    )
    # The supervisor's judgment stands: the person chosen need not have the skill on file.
    forwarded = create_work_order(
        session,
        order.ticket,
        order.kind,
        f"{order.description}\n【主管转派】{(note or '').strip() or holder.name + '安排'}",
        due_at=order.due_at if order.due_at and order.due_at > at else None,
        team_code=target.team.code if target.team else None,
        assignee_name=target.name,
        now=now,
        parent=order,
        at=at,
    )
    forwarded.skill = order.skill
    session.flush()
    return forwarded


def record_arrival(
    session: Session, number: str, now: dt.datetime | None = None, at: dt.datetime | None = None
) -> WorkOrder:
    """到场: when the worker reached the site. The ticket keeps its first arrival, from which
    the KPIs take the time to arrive."""
    current_user(session).require("ticket.handle", "登记到场")
    order = get_work_order(session, number)
    if order.ticket is None:
        raise CrmError(f"{order.number} 是任务：到场只登记在工单的派工单上。")
    if order.status != "open":
        raise CrmError(
            f"派工单 {order.number} 的状态是“{WORK_ORDER_STATUS[order.status]}”，只能为处理中的派工单登记到场。"
        )
    if order.arrived_at is not None:
        raise CrmError(
            f"{order.number} 已于 {to_local(order.arrived_at):%Y-%m-%d %H:%M} 登记到场。"
        )
    now, at = happened(session, order.ticket, now, at)
    if at < order.created_at:
        raise CrmError(f"到场时间不能早于派工时间 {to_local(order.created_at):%Y-%m-%d %H:%M}。")
    order.arrived_at = at
    ticket = order.ticket
    if ticket.arrived_at is None or at < ticket.arrived_at:
        ticket.arrived_at = at
    who = order.assignee.name if order.assignee else "处理人"
    record_event(session, ticket, "arrive", f"{who} 到场（派工单 {order.number}）", at, now)
    session.flush()
    return order


def work_order_row(order: WorkOrder, now: dt.datetime | None = None) -> dict[str, Any]:
    """One work order or task: codes for kind, status and origin (the CLI shows labels)."""
    now = now or utcnow()
    return {
        "number": order.number,
        "ticket": order.ticket.number if order.ticket else None,
        "household": order.household.code if order.household else None,
        "origin": order.origin,
        "kind": order.kind,
        "team": order.team.name if order.team else None,
        "assignee": order.assignee.name if order.assignee else None,
        "status": order.status,
        "due_at": order.due_at,
        "overdue": bool(order.status == "open" and order.due_at and order.due_at < now),
        "completed_at": order.completed_at,
        "description": order.description,
        "skill": order.skill,
        "arrived_at": order.arrived_at,
    }


def list_work_orders(
    session: Session,
    ticket: str | None = None,
    team: str | None = None,
    assignee: str | None = None,
    status: str | None = None,
    overdue: bool = False,
    tasks: bool | None = None,
    household: str | None = None,
    limit: int | None = 50,
    now: dt.datetime | None = None,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page:
    """Work orders and tasks, oldest first, one page of them with how many match; `tasks`
    True for tasks only, False for work orders under tickets only; `since`/`until` bound the
    due time ([since, until))."""
    now = now or utcnow()
    query = select(WorkOrder).outerjoin(Ticket, WorkOrder.ticket_id == Ticket.id)
    if ticket:
        query = query.where(Ticket.number == ticket.strip())
    if tasks is not None:
        query = query.where(
            WorkOrder.ticket_id.is_(None) if tasks else WorkOrder.ticket_id.is_not(None)
        )
    if household:
        from crm.core.households import get_household

        query = query.where(WorkOrder.household_id == get_household(session, household).id)
    if team:
        query = query.where(WorkOrder.team_id == get_team(session, team).id)
    if assignee:
        found = session.scalar(select(Staff.id).where(Staff.name == assignee.strip()))
        if found is None:
            raise NotFound(f"找不到员工“{assignee}”：请用 crm staff list 查看。")
        query = query.where(WorkOrder.assignee_id == found)
    if status:
        query = query.where(WorkOrder.status == code_of(WORK_ORDER_STATUS, status, "派工单状态"))
    if overdue:
        query = query.where(WorkOrder.status == "open", WorkOrder.due_at < now)
    query = query.where(*between(WorkOrder.due_at, since, until))
    page = fetch(session, query.order_by(WorkOrder.id), limit, offset, scalars=True)
    return page.map(lambda order: work_order_row(order, now))


def show_work_order(session: Session, number: str, now: dt.datetime | None = None) -> dict:
    order = get_work_order(session, number)
    row = work_order_row(order, now)
    parent = session.get(WorkOrder, order.parent_id) if order.parent_id else None
    continued = session.scalars(
        select(WorkOrder.number).where(WorkOrder.parent_id == order.id).order_by(WorkOrder.id)
    ).all()
    return row | {
        "result": order.result,
        "answer": order.answer,
        "accepted": order.accepted,
        "feedback": order.feedback_ref,
        "decision": order.decision_ref,
        "returned_reason": order.returned_reason,
        "returned_at": order.returned_at,
        "continues": parent.number if parent else None,
        "continued_by": list(continued),
        "created_at": order.created_at,
        "completion_entered_at": order.completion_entered_at,
    }
