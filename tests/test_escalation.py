"""Escalation: a major ticket goes straight to the manager, breaches and reopenings climb one
level, no rule fires twice for a level and the ladder stops at the general manager. Group
complaints (群诉) are tested in test_groups.py."""

from __future__ import annotations

from sqlalchemy import func, select
from test_tickets import T0, make_world, minutes, opened

from crm.core.db import transaction
from crm.plugins.service import escalation, sla, tickets
from crm.plugins.service.models import Escalation, Staff, TicketEvent


def rows(session, number) -> list[tuple[str, int, str | None]]:
    ticket = tickets.get_ticket(session, number)
    found = session.execute(
        select(Escalation.rule, Escalation.level, Staff.name)
        .outerjoin(Staff, Escalation.to_staff_id == Staff.id)
        .where(Escalation.ticket_id == ticket.id)
        .order_by(Escalation.id)
    ).all()
    return [tuple(row) for row in found]


def assessed(session, number, severity, category="engineering", now=None):
    now = now or T0 + minutes(2)
    with transaction(session):
        tickets.step(session, number, "confirm", now=now - minutes(1))
        tickets.assess(session, number, severity, category, ["fix_now"], now=now)


def test_a_major_ticket_goes_straight_to_the_manager_once(session):
    make_world(session)
    number = opened(session)
    assessed(session, number, "major")
    ticket = tickets.get_ticket(session, number)
    assert ticket.escalation_level == 3 and ticket.owner.name == "刘经理"
    assert rows(session, number) == [("major", 3, "刘经理")]
    with transaction(session):
        again = escalation.run_escalations(session, T0 + minutes(5))
        escalation.escalate_ticket(session, tickets.get_ticket(session, number), T0 + minutes(6))
    assert again["escalated"] == []
    assert rows(session, number) == [("major", 3, "刘经理")]


def test_each_breach_climbs_one_level_and_never_twice(session):
    make_world(session)
    number = opened(session)
    with transaction(session):
        sla.check_clocks(session, T0 + minutes(12))  # no first response: response breach
        first = escalation.run_escalations(session, T0 + minutes(12))
        escalation.run_escalations(session, T0 + minutes(13))
    assert first["escalated"] == [number]
    assert rows(session, number) == [("breach", 2, "陈主管")]
    with transaction(session):
        sla.check_clocks(session, T0 + minutes(31))  # and now the resolution too
        escalation.run_escalations(session, T0 + minutes(31))
        escalation.run_escalations(session, T0 + minutes(32))
    assert rows(session, number) == [("breach", 2, "陈主管"), ("breach", 3, "刘经理")]
    ticket = tickets.get_ticket(session, number)
    assert ticket.escalation_level == 3
    notes = session.scalars(
        select(TicketEvent.note).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.action == "escalate"
        )
    ).all()
    assert notes == [
        "升级至第 2 级（主管 陈主管）：超出服务时限",
        "升级至第 3 级（经理 刘经理）：超出服务时限",
    ]


def test_insert_or_ignore_on_the_unique_key(session):
    make_world(session)
    ticket = tickets.get_ticket(session, opened(session))
    values = {"ticket_id": ticket.id, "rule": "breach", "level": 2, "fired_at": T0, "note": "x"}
    assert escalation._insert_ignore(session, values) is not None
    assert escalation._insert_ignore(session, values | {"note": "y"}) is None
    assert session.scalar(select(func.count(Escalation.id))) == 1


def test_the_ladder_stops_at_the_general_manager(session):
    make_world(session)
    number = opened(session, kind="repair")
    assessed_at = T0 + minutes(2)
    with transaction(session):
        tickets.assess(session, number, "major", "engineering", [], now=assessed_at)
        sla.check_clocks(session, T0 + minutes(400))
        escalation.run_escalations(session, T0 + minutes(400))
        escalation.run_escalations(session, T0 + minutes(401))
    assert [(rule, level) for rule, level, _ in rows(session, number)] == [
        ("major", 3),
        ("breach", 4),
    ]
    assert tickets.get_ticket(session, number).escalation_level == 4
