"""Seed case (002): the flooded flat 1903, replayed with explicit times (the seed says 28 April
2006; the replay uses 2026). 8:05 the owner calls the monitoring centre; a guard is sent, judges
the leak minor, does nothing and tells no one; 9:00 the owner calls again; the technician arrives
at 9:10. The guard's silent work order, the second call, the breach and the escalation are all
on record."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from test_tickets import make_world

from crm.core.db import transaction
from crm.plugins.service import dispatch, escalation, sla, tickets
from crm.plugins.service.models import Escalation, Staff, TicketEvent, WorkOrder

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def at(hour: int, minute: int) -> dt.datetime:
    return dt.datetime(2026, 4, 28, hour, minute, tzinfo=SHANGHAI).astimezone(dt.UTC)


def test_flooded_flat_1903(session):
    make_world(session)
    with transaction(session):
        ticket = tickets.open_ticket(
            session,
            "H1",
            "complaint",
            "phone",
            "1903 阳台地漏堵塞，雨水涌进房间（装修工发现后通知业主李小姐）",
            unit="1903",
            reported_by="监控中心值班员",
            now=at(8, 5),
        )
        number = ticket.number
        tickets.step(session, number, "confirm", note="值班员安排安全员前往查看", now=at(8, 6))
        guard_order = dispatch.create_work_order(
            session,
            tickets.get_ticket(session, number),
            "remedial",
            "前往 1903 查看阳台进水情况",
            team_code="security",
            assignee_name="李安全",
            now=at(8, 6),
        ).number
    # The guard judges the leak minor: no action, no result, no word to the centre.
    with transaction(session):
        sla.check_clocks(session, at(8, 30))
    with transaction(session):
        tickets.record_contact(
            session,
            number,
            "phone",
            "业主再次致电监控中心并拨打客服大使电话：房间仍在进水",
            severity="major",
            now=at(9, 0),
        )
        technician_order = dispatch.create_work_order(
            session,
            tickets.get_ticket(session, number),
            "remedial",
            "技术员立即前往 1903 疏通地漏、处理进水",
            team_code="engineering",
            assignee_name="张技术",
            now=at(9, 1),
        ).number
        dispatch.complete_work_order(
            session, technician_order, "9:10 到场，装修工已把地漏疏通；清理积水", now=at(9, 10)
        )
        later = sla.check_clocks(session, at(9, 15))
        escalation.run_escalations(session, at(9, 15))

    ticket = tickets.get_ticket(session, number)
    # One ticket, two contacts: the second call is on the same register number.
    assert number == "TS20260428-0001"
    assert ticket.severity == "major"
    # The general complaint was due at 8:35; raising it to major at 9:00 kept the breach.
    assert ticket.resolve_breached and ticket.breached_at == at(8, 35)
    assert not ticket.response_breached and ticket.first_response_at == at(8, 6)
    assert ticket.warned_at == at(8, 30)
    assert later["resolve_breach"] == []  # major now: due 14:05, no second breach
    # The escalation: the breach climbs to the supervisor, the second call raising the
    # severity climbs once more, and the major ticket reaches the manager, who takes it over.
    escalations = session.execute(
        select(Escalation.rule, Escalation.level, Staff.name, Escalation.fired_at)
        .join(Staff, Escalation.to_staff_id == Staff.id)
        .where(Escalation.ticket_id == ticket.id)
        .order_by(Escalation.id)
    ).all()
    assert [tuple(row) for row in escalations] == [
        ("breach", 2, "陈主管", at(9, 0)),
        ("severity", 3, "刘经理", at(9, 0)),
        ("major", 3, "刘经理", at(9, 0)),
    ]
    assert ticket.escalation_level == 3 and ticket.owner.name == "刘经理"
    # The guard's work order stays open without a result: the lost information is visible.
    guard = session.scalar(select(WorkOrder).where(WorkOrder.number == guard_order))
    assert guard.status == "open" and guard.result is None and guard.assignee.name == "李安全"
    technician = session.scalar(select(WorkOrder).where(WorkOrder.number == technician_order))
    assert technician.status == "done" and technician.completed_at == at(9, 10)
    assert guard_order == f"{number}-01" and technician_order == f"{number}-02"

    events = session.execute(
        select(TicketEvent.at, TicketEvent.action, TicketEvent.note)
        .where(TicketEvent.ticket_id == ticket.id)
        .order_by(TicketEvent.id)
    ).all()
    assert [(e.at, e.action) for e in events] == [
        (at(8, 5), "open"),
        (at(8, 6), "confirm"),
        (at(8, 6), "dispatch"),
        (at(8, 30), "warning"),
        (at(9, 0), "contact"),
        (at(9, 0), "resolve_breach"),
        (at(9, 0), "severity"),
        (at(9, 0), "escalate"),
        (at(9, 0), "escalate"),
        (at(9, 0), "escalate"),
        (at(9, 1), "dispatch"),
        (at(9, 10), "work_done"),
    ]
    notes = {e.action: e.note for e in events}
    assert notes["contact"].startswith("第 2 次联系（电话）")
    assert notes["resolve_breach"] == "解决超时：应于 2026-04-28 08:35 前解决。"
    assert notes["severity"] == "严重程度 一般 → 重大"
    assert "李安全" in events[2].note
    shown = tickets.show_ticket(session, number, now=at(9, 15))
    assert [e["rule"] for e in shown["escalations"]] == ["breach", "severity", "major"]
    assert [w["result"] for w in shown["work_orders"]] == [None, technician.result]
