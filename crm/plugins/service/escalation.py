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

Group complaints are found, after the escalations, by groups.detect_group_complaints: the
same specific problem from several households of one building or area within a window, led by
the general manager.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from crm.core.audit import current_user, record
from crm.plugins.service.models import (
    Commitment,
    Escalation,
    Staff,
    Team,
    Ticket,
    TicketEvent,
)
from crm.plugins.service.rules import (
    ESCALATION_REASONS,
    LEVELS,
    PAUSED,
    RUNNING,
    climb,
)


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
    from crm.plugins.service.groups import detect_group_complaints

    groups = detect_group_complaints(session, now)
    return {"escalated": escalated, "groups": [g.number for g in groups]}
