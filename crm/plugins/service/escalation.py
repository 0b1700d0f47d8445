"""Escalation (升级), separate from the SLA clocks that feed it.

Rules (rules.climb), each recorded in svc_escalations with the level it reached:
    major     a major ticket goes straight to the manager (level 3), who becomes its owner;
    breach    each SLA breach (first response, resolution) climbs the ticket one level;
    reopen    each reopening climbs it one level;
    severity  each raise of the severity by a repeat call climbs it one level;
    group     a ticket linked into a group complaint (群诉) goes to the group's owner.
Levels: 1 front line, 2 supervisor, 3 manager, 4 general manager (svc_staff.level). The
escalation goes to an active person of that level, preferably of the ticket's own team, else
of the customer service centre. (ticket, rule, level) is unique and written with
insert-or-ignore, so a rule never fires twice for the same level, even when two checks run at
once.

Group complaints: complaints of the same category from `service.group_min_households`
(default 3) or more households of one building, or else of one project, opened within
`service.group_window_days` (default 7) are linked as one 群诉 with a level-3 (else level-4)
owner. Detecting again links only new tickets and never creates a second group.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

from sqlalchemy import and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from crm.core.audit import current_user, record
from crm.core.clock import to_local
from crm.core.errors import CrmError
from crm.core.models import Setting
from crm.plugins.service.models import (
    Commitment,
    Escalation,
    GroupComplaint,
    Staff,
    Team,
    Ticket,
    TicketEvent,
)
from crm.plugins.service.rules import (
    CUSTOMER,
    ESCALATION_REASONS,
    LEVELS,
    MANAGER,
    PAUSED,
    RUNNING,
    TOP,
    climb,
)

DEFAULT_MIN_HOUSEHOLDS = 3
DEFAULT_WINDOW_DAYS = 7
MIN_HOUSEHOLDS_KEY = "service.group_min_households"
WINDOW_DAYS_KEY = "service.group_window_days"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def pick_staff(session: Session, level: int, team_id: int | None) -> Staff | None:
    """An active person of that level: the ticket's team first, then customer service."""
    return session.scalars(
        select(Staff)
        .outerjoin(Team, Staff.team_id == Team.id)
        .where(Staff.level == level, Staff.active.is_(True))
        .order_by(
            case((Staff.team_id == team_id, 0), else_=1),
            case((Team.kind == "customer_service", 0), else_=1),
            Staff.id,
        )
        .limit(1)
    ).first()


def _insert_ignore(session: Session, values: dict) -> int | None:
    """Insert the escalation unless (ticket, rule, level) exists; the new id, else None."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    table = Escalation.__table__
    statement = (
        dialect_insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["ticket_id", "rule", "level"])
        .returning(table.c.id)
    )
    return session.execute(statement).scalar()


def _expire(session: Session) -> None:
    for obj in list(session.identity_map.values()):
        if isinstance(obj, (Ticket, Commitment)):
            session.expire(obj)


def _fire(
    session: Session,
    ticket_id: int,
    team_id: int | None,
    rule: str,
    level: int,
    now: dt.datetime,
    reason: str,
    to: Staff | None = None,
    take_over: bool = False,
) -> bool:
    """One escalation if it has not fired yet: the row, the ticket's level, the event."""
    to = to or pick_staff(session, level, team_id)
    who = f"{LEVELS[level]} {to.name}" if to else f"{LEVELS[level]}（未登记该级人员）"
    note = f"升级至第 {level} 级（{who}）：{reason}"
    inserted = _insert_ignore(
        session,
        {
            "ticket_id": ticket_id,
            "rule": rule,
            "level": level,
            "to_staff_id": to.id if to else None,
            "fired_at": now,
            "note": note,
        },
    )
    if inserted is None:
        return False
    t = Ticket.__table__
    session.execute(
        update(t)
        .where(t.c.id == ticket_id, t.c.escalation_level < level)
        .values(escalation_level=level, version=t.c.version + 1)
    )
    if take_over and to is not None:
        session.execute(
            update(t).where(t.c.id == ticket_id).values(owner_id=to.id, version=t.c.version + 1)
        )
    session.execute(
        insert(TicketEvent),
        [
            {
                "ticket_id": ticket_id,
                "at": now,
                "actor": current_user(session).name,
                "action": "escalate",
                "note": note,
            }
        ],
    )
    record(
        session,
        "escalate",
        "svc_tickets",
        ticket_id,
        changes={"rule": rule, "level": level, "to": to.name if to else None},
    )
    return True


def _causes(ticket: Ticket, fired_before: dict[str, int]) -> list[str]:
    """The ticket's escalation causes not yet answered, in the order they arise: breaches,
    reopenings and severity raises beyond those fired, then a major ticket's first escalation."""
    breaches = int(bool(ticket.response_breached)) + int(bool(ticket.resolve_breached))
    causes = []
    for rule, count in (
        ("breach", breaches),
        ("reopen", ticket.reopen_count or 0),
        ("severity", ticket.severity_raises or 0),
    ):
        causes += [rule] * max(0, count - fired_before.get(rule, 0))
    if ticket.severity == "major" and not fired_before.get("major"):
        causes.append("major")
    return causes


def escalate_ticket(
    session: Session, ticket: Ticket, now: dt.datetime | None = None
) -> list[tuple[str, int]]:
    """Apply the ticket's due escalations (rules.climb from its current level; the manager
    takes a major ticket over). Returns the (rule, level) pairs that fired."""
    now = now or utcnow()
    session.flush()
    tid, team_id = ticket.id, ticket.team_id
    on_record = session.execute(
        select(Escalation.rule, Escalation.level).where(Escalation.ticket_id == tid)
    ).all()
    fired_before: dict[str, int] = {}
    for rule, _level in on_record:
        fired_before[rule] = fired_before.get(rule, 0) + 1
    steps = climb(ticket.escalation_level or 1, _causes(ticket, fired_before), on_record)
    fired = [
        (rule, level)
        for rule, level in steps
        if _fire(
            session, tid, team_id, rule, level, now, ESCALATION_REASONS[rule],
            take_over=rule == "major",
        )
    ]  # fmt: skip
    if fired:
        _expire(session)
    return fired


def _count(rule: str):
    return (
        select(func.count(Escalation.id))
        .where(Escalation.ticket_id == Ticket.id, Escalation.rule == rule)
        .correlate(Ticket)
        .scalar_subquery()
    )


@cache
def _due_escalations():
    """Open tickets with more causes than escalations on record (built once: the check runs
    every few minutes)."""
    breaches = case((Ticket.response_breached.is_(True), 1), else_=0) + case(
        (Ticket.resolve_breached.is_(True), 1), else_=0
    )
    return (
        select(Ticket.id)
        .where(
            Ticket.status.in_((*RUNNING, PAUSED)),
            or_(
                breaches > _count("breach"),
                Ticket.reopen_count > _count("reopen"),
                Ticket.severity_raises > _count("severity"),
                and_(Ticket.severity == "major", _count("major") == 0),
            ),
        )
        .order_by(Ticket.id)
    )


def run_escalations(session: Session, now: dt.datetime | None = None) -> dict[str, list[str]]:
    """Escalate every open ticket with a rule due (found in one query), then detect group
    complaints. Returns the register numbers escalated and the group numbers touched."""
    now = now or utcnow()
    session.flush()
    due = session.scalars(_due_escalations()).all()
    escalated = []
    for ticket_id in due:
        ticket = session.get(Ticket, ticket_id)
        if escalate_ticket(session, ticket, now):
            escalated.append(ticket.number)
    groups = detect_group_complaints(session, now)
    return {"escalated": escalated, "groups": [g.number for g in groups]}


# --- group complaints (群诉) -------------------------------------------------------------------


def _int_setting(session: Session, key: str, default: int) -> int:
    text = session.scalar(select(Setting.value).where(Setting.key == key))
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise CrmError(f"设置 {key}={text!r} 须是正整数。")
    return value


def _group_number(session: Session, now: dt.datetime) -> str:
    head = f"QS{to_local(now):%Y%m%d}-"
    last = session.scalar(
        select(func.max(GroupComplaint.number)).where(GroupComplaint.number.like(f"{head}%"))
    )
    return f"{head}{int(last.rsplit('-', 1)[1]) + 1 if last else 1:04d}"


def _group_for(
    session: Session,
    project_id: int | None,
    building_id: int | None,
    category: str,
    now: dt.datetime,
) -> tuple[GroupComplaint, bool]:
    found = session.scalars(
        select(GroupComplaint)
        .where(
            GroupComplaint.status == "open",
            GroupComplaint.category == category,
            GroupComplaint.project_id.is_(None)
            if project_id is None
            else GroupComplaint.project_id == project_id,
            GroupComplaint.building_id.is_(None)
            if building_id is None
            else GroupComplaint.building_id == building_id,
        )
        .order_by(GroupComplaint.id)
        .limit(1)
    ).first()
    if found is not None:
        return found, False
    owner = pick_staff(session, MANAGER, None) or pick_staff(session, TOP, None)
    group = GroupComplaint(
        number=_group_number(session, now),
        project_id=project_id,
        building_id=building_id,
        category=category,
        phase="emerging",
        owner_id=owner.id if owner else None,
        status="open",
        detected_at=now,
        households=0,
    )
    session.add(group)
    session.flush()
    return group, True


def _link(session: Session, group: GroupComplaint, where: list, now: dt.datetime) -> int:
    """Link the matching ungrouped tickets; escalate each to the group's owner."""
    t = Ticket.__table__
    linked = session.execute(
        update(t)
        .where(*where, t.c.group_id.is_(None))
        .values(group_id=group.id, version=t.c.version + 1)
        .returning(t.c.id, t.c.team_id)
    ).all()
    owner = session.get(Staff, group.owner_id) if group.owner_id else None
    actor = current_user(session).name
    if linked:
        session.execute(
            insert(TicketEvent),
            [
                {
                    "ticket_id": row.id,
                    "at": now,
                    "actor": actor,
                    "action": "group",
                    "note": f"并入群诉 {group.number}",
                }
                for row in linked
            ],
        )
        record(
            session,
            "group_link",
            "svc_group_complaints",
            group.id,
            changes={"tickets": [row.id for row in linked]},
        )
    for row in linked:
        if owner is not None:
            _fire(
                session,
                row.id,
                row.team_id,
                "group",
                owner.level,
                now,
                f"群诉 {group.number}",
                to=owner,
            )
    group.households = session.scalar(
        select(func.count(func.distinct(Ticket.household_id))).where(Ticket.group_id == group.id)
    )
    _expire(session)
    return len(linked)


def _recent_complaints(since, now) -> list:
    """Customers' complaints, assessed (a category), opened in [since, now]."""
    t = Ticket.__table__
    return [
        t.c.ticket_type == "complaint",
        t.c.origin == CUSTOMER,
        t.c.category.is_not(None),
        t.c.opened_at >= since,
        t.c.opened_at <= now,
    ]


@cache
def _candidates():
    """The groups of recent complaints large enough to be a group complaint: per building
    and category, then per project and category among the tickets outside any building group
    (or already in a project group). Built once, with :since, :now and :least."""
    t = Ticket.__table__
    recent = _recent_complaints(bindparam("since"), bindparam("now"))
    households = func.count(func.distinct(t.c.household_id))
    by_building = (
        select(t.c.project_id, t.c.building_id, t.c.category)
        .where(*recent, t.c.building_id.is_not(None))
        .group_by(t.c.project_id, t.c.building_id, t.c.category)
        .having(households >= bindparam("least"))
    )
    project_groups = select(GroupComplaint.id).where(GroupComplaint.building_id.is_(None))
    loose = or_(t.c.group_id.is_(None), t.c.group_id.in_(project_groups))
    by_project = (
        select(t.c.project_id, t.c.category)
        .where(*recent, t.c.project_id.is_not(None), loose)
        .group_by(t.c.project_id, t.c.category)
        .having(households >= bindparam("least"))
    )
    return by_building, by_project


def detect_group_complaints(
    session: Session,
    now: dt.datetime | None = None,
    min_households: int | None = None,
    window_days: int | None = None,
) -> list[GroupComplaint]:
    """Find and link group complaints (building first, then project). Returns the groups
    created or grown by this run."""
    now = now or utcnow()
    session.flush()
    least = min_households or _int_setting(session, MIN_HOUSEHOLDS_KEY, DEFAULT_MIN_HOUSEHOLDS)
    days = window_days or _int_setting(session, WINDOW_DAYS_KEY, DEFAULT_WINDOW_DAYS)
    t = Ticket.__table__
    since = now - dt.timedelta(days=days)
    recent = _recent_complaints(since, now)
    touched: dict[int, GroupComplaint] = {}
    window = {"since": since, "now": now, "least": least}
    by_building = session.execute(_candidates()[0], window).all()
    for project_id, building_id, category in by_building:
        group, new = _group_for(session, project_id, building_id, category, now)
        where = [*recent, t.c.building_id == building_id, t.c.category == category]
        if _link(session, group, where, now) or new:
            touched[group.id] = group
    by_project = session.execute(_candidates()[1], window).all()
    for project_id, category in by_project:
        group, new = _group_for(session, project_id, None, category, now)
        where = [*recent, t.c.project_id == project_id, t.c.category == category]
        if _link(session, group, where, now) or new:
            touched[group.id] = group
    session.flush()
    return list(touched.values())


def list_groups(session: Session) -> list[dict]:
    rows = session.execute(
        select(GroupComplaint, Staff.name)
        .outerjoin(Staff, GroupComplaint.owner_id == Staff.id)
        .order_by(GroupComplaint.id.desc())
    ).all()
    return [
        {
            "number": g.number,
            "category": g.category,
            "phase": g.phase,
            "status": g.status,
            "households": g.households,
            "owner": owner,
            "detected_at": g.detected_at,
            "tickets": session.scalars(
                select(Ticket.number).where(Ticket.group_id == g.id).order_by(Ticket.id)
            ).all(),
        }
        for g, owner in rows
    ]
