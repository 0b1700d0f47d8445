"""Seed case (002, 家政维修 案例描述1): the intercom button repair.

Technician 甲 replaced a broken intercom button but, without the fee record book, never told
the owner the job was paid; 乙, sent later to collect, was refused ("not told beforehand, no
clear rate"). The next day the intercom failed again (a loose button contact) and 丙 asked why
the owner would not pay. The system must make each of those impossible: no paid job starts
without a stated rate, none completes without a fee record signed by the owner, and the repeat
failure is a free rework linked to the first repair, followed by the phone revisit.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.core.models import Building, Household, Project, Purchase, Unit
from crm.plugins.service.dispatch import add_staff, complete_work_order
from crm.plugins.service.models import Ticket, TicketEvent, WorkOrder
from crm.plugins.service.repairs import check_warranty, complete_repair, quote_repair, start_repair

DAY1 = dt.datetime(2026, 4, 25, 2, 0, tzinfo=dt.UTC)  # Saturday 10:00 in Shanghai
DAY2 = DAY1 + dt.timedelta(days=1)


@pytest.fixture
def owner(app):
    """An owner handed over in 2023: the intercom's one-year warranty is long over."""
    with app.session() as session, transaction(session):
        project = Project(name="四季花城")
        building = Building(project=project, name="3栋")
        flat = Unit(building=building, code="12-1A")
        household = Household(code="H-12-1A", name="陈先生家", status="existing", project=project)
        session.add_all([project, building, flat, household])
        session.flush()
        session.add(
            Purchase(
                contract_no="SJ-2023-0412",
                household_id=household.id,
                unit_id=flat.id,
                purchase_date=dt.date(2022, 10, 1),
                amount=Decimal(2100000),
                handover_date=dt.date(2023, 6, 30),
            )
        )
        add_staff(session, "技术员甲", "engineering", "技术员")
        add_staff(session, "技术员丙", "engineering", "技术员")
        add_staff(session, "客服大使", "service_center", "客服大使")
        return household.id, flat.id


def _report(session, number, household_id, unit_id, at) -> Ticket:
    ticket = Ticket(
        number=number,
        ticket_type="repair",
        channel="visit",
        household_id=household_id,
        unit_id=unit_id,
        summary="对讲机按钮损坏",
        status="accepted",
        opened_at=at,
    )
    session.add(ticket)
    session.flush()
    return ticket


def test_the_intercom_repair_with_an_undisclosed_fee(app, owner):
    household_id, unit_id = owner
    first = "WX20260425-0001"
    with app.session() as session, transaction(session):
        _report(session, first, household_id, unit_id, DAY1)
        checked = check_warranty(session, first, "intercom", now=DAY1)
        assert checked["paid"] is True and checked["warranty_until"] == dt.date(2024, 6, 30)

    # 甲 went straight to work without telling the owner the rate: refused, nothing written.
    with app.session() as session:
        with pytest.raises(CrmError, match="开工前必须向业主说明收费标准"):
            start_repair(session, first, assignee_name="技术员甲", now=DAY1)
        session.rollback()
        assert session.scalars(select(WorkOrder)).all() == []

    with app.session() as session, transaction(session):
        quote_repair(session, first, "按钮材料费 30 元/个，人工费 20 元/次", now=DAY1)
        order = start_repair(session, first, assignee_name="技术员甲", now=DAY1)
        assert order.number == f"{first}-01" and "按钮材料费 30 元/个" in order.description

    # Finishing without the owner's signature on the fee record (乙 collecting later) is refused.
    finished = DAY1 + dt.timedelta(hours=1)
    with app.session() as session:
        with pytest.raises(CrmError, match="签字"):
            complete_repair(session, first, "更换对讲机按钮", fee_amount=50, now=finished)
        session.rollback()
        with pytest.raises(CrmError, match="业主签字"):
            complete_work_order(session, f"{first}-01", "更换对讲机按钮", now=finished)
        session.rollback()
        assert (
            session.scalar(select(WorkOrder.status).where(WorkOrder.number == f"{first}-01"))
            == "open"
        )

    with app.session() as session, transaction(session):
        status = complete_repair(
            session, first, "更换对讲机按钮", fee_amount="50", signed_by="陈先生", now=finished
        )
        assert status["fee_amount"] == Decimal("50.00") and status["fee_signed_by"] == "陈先生"
        assert status["revisit"] == f"{first}-02"
        assert status["revisit_due_at"] == finished + dt.timedelta(hours=24)

    # Next day the intercom fails again: a free rework of the first repair, not a new bill.
    second = "WX20260426-0001"
    with app.session() as session, transaction(session):
        _report(session, second, household_id, unit_id, DAY2)
        checked = check_warranty(session, second, "intercom", now=DAY2)
        assert checked["paid"] is False and checked["rework_of"] == first
        assert "返修" in checked["reason"]
        order = start_repair(session, second, now=DAY2)  # no quote needed for a free job
        assert order.assignee.name == "技术员丙"  # both technicians are free: ties go by name
        assert "返修" in order.description
    with app.session() as session:
        with pytest.raises(CrmError, match="不能收取费用"):
            complete_repair(session, second, "按钮接触不良，重新调试", fee_amount=50, now=DAY2)
        session.rollback()
    with app.session() as session, transaction(session):
        status = complete_repair(session, second, "按钮接触不良，重新调试", now=DAY2)
        assert status["fee_amount"] is None and status["revisit"] == f"{second}-02"

    # Everything is on record, in order, on both tickets.
    with app.session() as session:
        actions = session.scalars(
            select(TicketEvent.action)
            .join(Ticket, TicketEvent.ticket_id == Ticket.id)
            .where(Ticket.number == first)
            .order_by(TicketEvent.id)
        ).all()
        # The repair moves its ticket: the check is the assessment (and the first response),
        # the job starts the work, the signed completion closes it and brings the revisit.
        assert actions == [
            "assess",
            "assign",
            "fee_stated",
            "dispatch",
            "investigate",
            "fee_signed",
            "work_done",
            "close",
            "dispatch",
        ]
        first_ticket = session.scalar(select(Ticket).where(Ticket.number == first))
        assert first_ticket.status == "closed" and first_ticket.first_response_at == DAY1
        assert first_ticket.closed_at == finished and first_ticket.customer_confirmed
        rework = session.scalar(select(Ticket).where(Ticket.number == second))
        assert session.get(Ticket, rework.rework_of_id).number == first
        revisits = session.scalars(
            select(WorkOrder.number).where(WorkOrder.kind == "revisit").order_by(WorkOrder.id)
        ).all()
        assert revisits == [f"{first}-02", f"{second}-02"]
