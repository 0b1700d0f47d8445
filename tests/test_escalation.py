"""Escalation: a major ticket goes straight to the manager, breaches and reopenings climb one
level, no rule fires twice for a level, and group complaints (群诉) are found once."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from test_tickets import T0, make_world, minutes, opened

from crm.core.db import transaction
from crm.plugins.service import escalation, sla, tickets
from crm.plugins.service.models import Escalation, GroupComplaint, Staff, Ticket, TicketEvent


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


def _complaint(session, code, unit, category="engineering", now=T0):
    number = opened(session, code, unit=unit, now=now)
    assessed(session, number, "general", category, now=now + minutes(2))
    return number


def test_three_households_of_one_building_make_one_group_complaint(session):
    world = make_world(session, households=5)
    numbers = [
        _complaint(session, f"H{i}", f"19{i + 2:02d}", now=T0 + dt.timedelta(days=i))
        for i in (1, 2)
    ]
    _complaint(session, "H3", "1905", category="service", now=T0 + dt.timedelta(days=3))
    with transaction(session):
        assert escalation.detect_group_complaints(session, T0 + dt.timedelta(days=3)) == []
    numbers.append(_complaint(session, "H3", "1905", now=T0 + dt.timedelta(days=4)))
    # The same household twice does not count twice.
    _complaint(session, "H1", "1903", now=T0 + dt.timedelta(days=4, hours=1))
    with transaction(session):
        found = escalation.detect_group_complaints(session, T0 + dt.timedelta(days=4, hours=2))
    assert len(found) == 1
    group = found[0]
    assert group.number == "QS20260502-0001" and group.households == 3
    assert group.building_id == world["buildings"][0].id and group.category == "engineering"
    assert session.get(Staff, group.owner_id).name == "刘经理"
    linked = session.scalars(
        select(Ticket.number).where(Ticket.group_id == group.id).order_by(Ticket.id)
    ).all()
    assert len(linked) == 4 and set(numbers) <= set(linked)
    assert rows(session, numbers[0])[-1] == ("group", 3, "刘经理")
    with transaction(session):
        again = escalation.detect_group_complaints(session, T0 + dt.timedelta(days=4, hours=3))
        escalation.run_escalations(session, T0 + dt.timedelta(days=4, hours=3))
    assert again == []
    assert session.scalar(select(func.count(GroupComplaint.id))) == 1
    assert session.scalar(select(func.count(Escalation.id)).where(Escalation.rule == "group")) == 4


def test_outside_the_window_or_across_buildings(session):
    make_world(session, households=6, buildings=2)
    # H1, H3, H5 live in building 0; H2, H4, H6 in building 1.
    _complaint(session, "H1", "1903", now=T0)
    _complaint(session, "H3", "1905", now=T0 + dt.timedelta(days=8))
    _complaint(session, "H5", "1907", now=T0 + dt.timedelta(days=9))
    with transaction(session):
        assert escalation.detect_group_complaints(session, T0 + dt.timedelta(days=9)) == []
    _complaint(session, "H2", "1904", now=T0 + dt.timedelta(days=9))
    with transaction(session):
        found = escalation.detect_group_complaints(session, T0 + dt.timedelta(days=9, hours=1))
    assert len(found) == 1 and found[0].building_id is None and found[0].households == 3


@pytest.mark.parametrize("households", [2])
def test_thresholds_come_from_settings(session, households):
    from crm.core.models import Setting

    make_world(session)
    session.add(Setting(key=escalation.MIN_HOUSEHOLDS_KEY, value=str(households)))
    session.commit()
    _complaint(session, "H1", "1903")
    _complaint(session, "H2", "1904")
    with transaction(session):
        assert len(escalation.detect_group_complaints(session, T0 + minutes(10))) == 1
