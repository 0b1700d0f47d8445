"""Repairs: warranty by item and handover date, the fee stated before work, the fee signed on
completion, and the revisit due within 24 hours."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from crm.core.db import transaction
from crm.core.errors import CrmError, PermissionDenied
from crm.core.models import Building, Household, Project, Purchase, Unit
from crm.core.security import User
from crm.plugins.service.dispatch import add_staff
from crm.plugins.service.models import Ticket, TicketEvent, WorkOrder
from crm.plugins.service.repairs import (
    check_warranty,
    complete_repair,
    quote_repair,
    set_warranty_months,
    start_repair,
)

NOW = dt.datetime(2026, 4, 28, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai


def _home(session, code: str, unit: str, handover: dt.date | None) -> tuple[Household, Unit]:
    project = session.scalar(select(Project).where(Project.name == "四季花城"))
    if project is None:
        project = Project(name="四季花城")
        building = Building(project=project, name="2区5栋")
        session.add_all([project, building])
    building = session.scalar(select(Building).where(Building.name == "2区5栋"))
    household = Household(code=code, name=f"{code}家", status="existing", project=project)
    flat = Unit(building=building, code=unit)
    session.add_all([household, flat])
    session.flush()
    session.add(
        Purchase(
            contract_no=f"C-{code}-{unit}",
            household_id=household.id,
            unit_id=flat.id,
            purchase_date=dt.date(2020, 1, 1),
            amount=Decimal(1500000),
            handover_date=handover,
        )
    )
    session.flush()
    return household, flat


def _repair(session, number, household, unit=None, opened_at=NOW) -> Ticket:
    ticket = Ticket(
        number=number,
        ticket_type="repair",
        channel="visit",
        household_id=household.id,
        unit_id=unit.id if unit else None,
        summary="报修",
        status="accepted",
        opened_at=opened_at,
    )
    session.add(ticket)
    session.flush()
    return ticket


@pytest.fixture
def technician(app):
    with app.session() as session, transaction(session):
        add_staff(session, "技术员甲", "engineering", "技术员")
        add_staff(session, "客服大使", "service_center", "客服大使")


@pytest.mark.parametrize(
    ("item", "handover", "in_warranty"),
    [
        ("waterproofing", dt.date(2021, 4, 29), True),  # 5 years end tomorrow
        ("防水防渗漏", dt.date(2021, 4, 28), False),  # 5 years ended today
        ("electrical", dt.date(2024, 5, 1), True),
        ("plumbing", dt.date(2024, 4, 1), False),
        ("intercom", dt.date(2025, 5, 1), True),
        ("楼宇对讲", dt.date(2025, 4, 1), False),
        ("drain_blockage", dt.date(2026, 3, 1), True),
        ("home_service", dt.date(2026, 4, 1), False),  # never under warranty
    ],
)
def test_warranty_by_item_and_handover(app, item, handover, in_warranty):
    with app.session() as session, transaction(session):
        household, flat = _home(session, "H1", "1903", handover)
        ticket = _repair(session, "WX20260428-0001", household, flat)
        checked = check_warranty(session, ticket.number, item, now=NOW)
        assert checked["in_warranty"] is in_warranty
        assert checked["paid"] is (not in_warranty)
        assert ticket.paid is (not in_warranty)
        # A home service is never under warranty, whatever the handover date.
        assert (str(handover) in checked["reason"]) is (item != "home_service")
        # The first check is the first response and the repair's assessment.
        event = session.scalar(select(TicketEvent).where(TicketEvent.action == "assess"))
        assert ("免费维修" in event.note) is in_warranty
        assert ticket.status == "assessed" and ticket.first_response_at == NOW
        again = check_warranty(session, ticket.number, item, now=NOW + dt.timedelta(minutes=1))
        assert again["paid"] is (not in_warranty)
        event = session.scalar(select(TicketEvent).where(TicketEvent.action == "warranty_check"))
        assert ("免费维修" in event.note) is in_warranty and ticket.status == "assessed"


def test_warranty_needs_a_handover_date_and_a_unit_when_ambiguous(app):
    with app.session() as session, transaction(session):
        household, _ = _home(session, "H1", "1903", None)
        ticket = _repair(session, "WX20260428-0001", household)
    with app.session() as session:
        with pytest.raises(CrmError, match="交房日期"):
            check_warranty(session, "WX20260428-0001", "intercom", now=NOW)
        session.rollback()
        # Without a handover date the customer's own damage and home services are still paid.
        damaged = check_warranty(session, "WX20260428-0001", "intercom", "人为损坏", now=NOW)
        assert (damaged["in_warranty"], damaged["paid"]) == (None, True)
        home = check_warranty(session, "WX20260428-0001", "home_service", now=NOW)
        assert (home["in_warranty"], home["paid"]) == (False, True)
        session.rollback()
    with app.session() as session, transaction(session):
        for code, handover in (("1903", dt.date(2025, 6, 1)), ("1904", dt.date(2024, 6, 1))):
            flat = Unit(building=session.scalar(select(Building)), code=f"{code}B")
            session.add(flat)
            session.flush()
            session.add(
                Purchase(
                    contract_no=f"C2-{code}",
                    household_id=ticket.household_id,
                    unit_id=flat.id,
                    purchase_date=dt.date(2020, 1, 1),
                    amount=Decimal(1),
                    handover_date=handover,
                )
            )
    with app.session() as session, pytest.raises(CrmError, match="多套已交房单位"):
        check_warranty(session, "WX20260428-0001", "intercom", now=NOW)


def test_customer_damage_is_paid_even_in_warranty(app):
    with app.session() as session, transaction(session):
        household, flat = _home(session, "H1", "1903", dt.date(2026, 1, 1))
        _repair(session, "WX20260428-0001", household, flat)
        checked = check_warranty(session, "WX20260428-0001", "fittings", "人为损坏", now=NOW)
        assert checked["in_warranty"] is True and checked["paid"] is True
        assert "人为损坏" in checked["reason"]


def test_a_free_repair_takes_no_fee_and_brings_the_revisit(app, technician):
    with app.session() as session, transaction(session):
        household, flat = _home(session, "H1", "1903", dt.date(2025, 10, 1))
        _repair(session, "WX20260428-0001", household, flat)
        check_warranty(session, "WX20260428-0001", "electrical", now=NOW)
        with pytest.raises(CrmError, match="不需要报价"):
            quote_repair(session, "WX20260428-0001", "人工费 20 元", now=NOW)
        order = start_repair(session, "WX20260428-0001", now=NOW)
        assert order.team.code == "engineering" and order.assignee.name == "技术员甲"
        assert "免费" in order.description
        with pytest.raises(CrmError, match="不能收取费用"):
            complete_repair(session, "WX20260428-0001", "更换开关", fee_amount="30", now=NOW)
        done_at = NOW + dt.timedelta(hours=2)
        status = complete_repair(session, "WX20260428-0001", "更换开关", now=done_at)
        assert status["fee_amount"] is None and status["revisit"] == "WX20260428-0001-02"
        assert status["revisit_due_at"] == done_at + dt.timedelta(hours=24)
        revisit = session.scalar(select(WorkOrder).where(WorkOrder.kind == "revisit"))
        assert revisit.team.code == "service_center" and revisit.assignee.name == "客服大使"
        with pytest.raises(CrmError, match="已经派出维修"):
            check_warranty(session, "WX20260428-0001", "electrical", now=NOW)


def test_warranty_periods_may_be_lengthened_not_shortened(app):
    with app.session() as session, transaction(session):
        with pytest.raises(CrmError, match="法定最低 12"):
            set_warranty_months(session, "intercom", 6)
        set_warranty_months(session, "楼宇对讲", 24)
        household, flat = _home(session, "H1", "1903", dt.date(2025, 1, 1))
        _repair(session, "WX20260428-0001", household, flat)
        assert check_warranty(session, "WX20260428-0001", "intercom", now=NOW)["in_warranty"]
    with app.session() as session:
        session.info["user"] = User("小周", "agent")
        with pytest.raises(PermissionDenied):
            set_warranty_months(session, "intercom", 36)


def test_only_repair_tickets_and_known_items(app):
    with app.session() as session, transaction(session):
        household, flat = _home(session, "H1", "1903", dt.date(2025, 1, 1))
        ticket = _repair(session, "TS20260428-0001", household, flat)
        ticket.ticket_type = "complaint"
        _repair(session, "WX20260428-0001", household, flat)
    with app.session() as session:
        with pytest.raises(CrmError, match="不是报修单"):
            check_warranty(session, "TS20260428-0001", "intercom", now=NOW)
        with pytest.raises(CrmError, match="不认识的维修项目"):
            check_warranty(session, "WX20260428-0001", "roof garden", now=NOW)
        with pytest.raises(CrmError, match="没有做保修判断"):
            start_repair(session, "WX20260428-0001", now=NOW)


def test_cli_repair_flow(app, run, technician):
    with app.session() as session, transaction(session):
        household, flat = _home(session, "H1", "1903", dt.date(2020, 1, 1))
        _repair(session, "WX20260428-0001", household, flat)
    items = json.loads(run("repair", "items", "--format", "json").output)
    assert {r["code"]: r["months"] for r in items}["waterproofing"] == 60
    checked = run(
        "repair", "check", "WX20260428-0001", "--item", "门窗及五金件", "--format", "json"
    )
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["paid"] is True
    refused = run("repair", "start", "WX20260428-0001")
    assert refused.exit_code != 0 and "收费标准" in refused.output
    assert run("repair", "quote", "WX20260428-0001", "--rate", "材料费 15 元/个").exit_code == 0
    started = run("repair", "start", "WX20260428-0001")
    assert started.exit_code == 0 and "WX20260428-0001-01" in started.output
    unsigned = run("repair", "complete", "WX20260428-0001", "--result", "换合页", "--fee", "15")
    assert unsigned.exit_code != 0 and "签字" in unsigned.output
    bad_fee = run(
        "repair", "complete", "WX20260428-0001", "--result", "换合页", "--fee", "十五",
        "--signed-by", "李小姐",
    )  # fmt: skip
    assert bad_fee.exit_code != 0 and "看不懂金额" in bad_fee.output
    done = run(
        "repair", "complete", "WX20260428-0001", "--result", "换合页", "--fee", "15",
        "--signed-by", "李小姐", "--format", "json",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    record = json.loads(done.output)
    assert record["fee_amount"] == 15 and record["fee_signed_by"] == "李小姐"
    assert record["revisit"] == "WX20260428-0001-02"
    shown = run("repair", "check", "WX20260428-0001", "--item", "fittings")
    assert shown.exit_code != 0 and "已经派出维修" in shown.output


def test_a_repair_moves_its_ticket_to_the_revisit_and_the_revisit_records_satisfaction(
    app, technician
):
    """Seen: after check, quote, start, complete with signed fee and the automatic revisit
    order, the ticket still stood at 受理, the SLA check flagged 首次响应超时 and the revisit
    work order recorded no satisfaction."""
    from crm.plugins.satisfaction.models import Survey
    from crm.plugins.service.dispatch import complete_work_order
    from crm.plugins.service.sla import check_clocks
    from crm.plugins.service.tickets import open_ticket

    with app.session() as session, transaction(session):
        _home(session, "H1", "1903", dt.date(2020, 1, 1))  # out of warranty: paid
        number = open_ticket(
            session, "H1", "repair", "phone", "马桶堵塞", unit="1903", now=NOW
        ).number
    step = dt.timedelta(minutes=3)
    with app.session() as session, transaction(session):
        check_warranty(session, number, "drain_blockage", now=NOW + step)
        quote_repair(session, number, "疏通 80 元/次", now=NOW + 2 * step)
        start_repair(session, number, now=NOW + 3 * step)
        ticket = session.scalar(select(Ticket).where(Ticket.number == number))
        assert (ticket.status, ticket.first_response_at) == ("investigating", NOW + step)
        status = complete_repair(
            session, number, "已疏通", fee_amount="80", signed_by="陈先生", now=NOW + 4 * step
        )
        assert ticket.status == "closed" and ticket.closed_at == NOW + 4 * step
        assert ticket.result == "已疏通" and ticket.customer_confirmed
        revisit_order = status["revisit"]
        # The SLA check finds nothing: the first response came in time and it is closed.
        found = check_clocks(session, NOW + dt.timedelta(hours=2))
        assert not any(found.values())
    with app.session() as session:
        with pytest.raises(CrmError, match="请登记客户的满意度"):
            complete_work_order(session, revisit_order, "已回访", now=NOW + dt.timedelta(hours=3))
        session.rollback()
        with pytest.raises(CrmError, match="须跟进到客户满意为止"):
            complete_work_order(
                session, revisit_order, "还是堵", now=NOW + dt.timedelta(hours=3),
                revisit={"csat": 1},
            )  # fmt: skip
        session.rollback()
    with app.session() as session, transaction(session):
        complete_work_order(
            session, revisit_order, "很满意", now=NOW + dt.timedelta(hours=3),
            revisit={"csat": 5, "nps": 9},
        )  # fmt: skip
        ticket = session.scalar(select(Ticket).where(Ticket.number == number))
        order = session.scalar(select(WorkOrder).where(WorkOrder.number == revisit_order))
        survey = session.scalar(select(Survey).where(Survey.ticket_number == number))
        assert ticket.status == "revisited" and order.status == "done"
        assert (survey.kind, survey.csat, survey.nps) == ("revisit", 5, 9)
        assert survey.taken_at == NOW + dt.timedelta(hours=3)
