"""Seed case (002, 案例描述4): the owner who wanted help beyond the technician's skill.

The owner asked for furniture to be taken apart and put back together. The first repairman,
having no carpenter in the centre, gave her a decoration company's hotline and left; the owner
complained. The lesson: a job beyond one's skill goes back to the supervisor (回馈相关主管) so
another way is found, and no information is lost. Here the job returns to the supervisor as a
new work order under the same register number; the supervisor sends a colleague with
carpentry experience, the paid home service is signed off, and the revisit follows.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.core.models import Building, Household, Project, Purchase, Unit
from crm.plugins.service.dispatch import (
    add_staff,
    complete_work_order,
    create_work_order,
    return_to_supervisor,
    show_work_order,
)
from crm.plugins.service.models import Ticket, TicketEvent, WorkOrder
from crm.plugins.service.repairs import check_warranty, complete_repair, quote_repair, start_repair
from crm.plugins.service.tickets import get_ticket

NOW = dt.datetime(2026, 5, 9, 6, 0, tzinfo=dt.UTC)
NUMBER = "WX20260509-0003"


@pytest.fixture
def request_for_carpentry(app):
    with app.session() as session, transaction(session):
        project = Project(name="万科城")
        flat = Unit(building=Building(project=project, name="7栋"), code="2A-1B")
        household = Household(code="H-2A-1B", name="周女士家", status="existing", project=project)
        session.add_all([project, flat, household])
        session.flush()
        session.add(
            Purchase(
                contract_no="WKC-0907",
                household_id=household.id,
                unit_id=flat.id,
                purchase_date=dt.date(2024, 3, 1),
                amount=Decimal(1800000),
                handover_date=dt.date(2025, 9, 1),
            )
        )
        session.add(
            Ticket(
                number=NUMBER,
                ticket_type="repair",
                channel="phone",
                household_id=household.id,
                unit_id=flat.id,
                summary="业主要求拆装衣柜等家居物品",
                status="accepted",
                opened_at=NOW,
            )
        )
        add_staff(session, "维修员一", "engineering", "技术员", skills=["水电"])
        add_staff(session, "维修员二", "engineering", "技术员", skills=["水电", "木工"])
        add_staff(session, "工程主管", "engineering", "主管", level=2)
        add_staff(session, "客服大使", "service_center", "客服大使")
        session.flush()
        # 维修员二 is busy with another job, so the balanced dispatch picks 维修员一 first.
        other = Ticket(
            number="WX20260509-0001",
            ticket_type="repair",
            channel="phone",
            household_id=household.id,
            summary="灯具不亮",
            status="accepted",
            opened_at=NOW,
            paid=False,
            in_warranty=True,
        )
        session.add(other)
        session.flush()
        create_work_order(session, other, "repair", "更换灯具", assignee_name="维修员二", now=NOW)


def test_a_job_beyond_skill_returns_to_the_supervisor(app, request_for_carpentry, run):
    with app.session() as session, transaction(session):
        checked = check_warranty(session, NUMBER, "居家服务", now=NOW)
        assert checked["paid"] is True  # furniture is no warranty item: a paid home service
        quote_repair(session, NUMBER, "人工费 80 元/小时", now=NOW)
        first = start_repair(session, NUMBER, now=NOW)
        assert first.assignee.name == "维修员一"

    # 维修员一 cannot do carpentry: he returns the job instead of handing over a phone number.
    later = NOW + dt.timedelta(minutes=40)
    with app.session() as session:
        with pytest.raises(CrmError, match="退回原因"):
            return_to_supervisor(session, first.number, "  ", now=later)
        session.rollback()
    with app.session() as session, transaction(session):
        new = return_to_supervisor(
            session,
            first.number,
            "需拆装衣柜，需木工技能，本人无法完成；业主希望今天处理",
            now=later,
        )
        assert new.number == f"{NUMBER}-02" and new.assignee.name == "工程主管"
        assert new.parent_id == first.id and new.kind == "repair"
        assert "需木工技能" in new.description and "拆装衣柜" in new.description
    with app.session() as session, pytest.raises(CrmError, match="只有处理中的才能退回"):
        return_to_supervisor(session, first.number, "再退一次", now=later)

    # Nothing is lost: the returned order keeps its reason and points to its continuation.
    with app.session() as session:
        returned = show_work_order(session, first.number, now=later)
        assert returned["status"] == "returned" and returned["returned_at"] == later
        assert returned["continued_by"] == [f"{NUMBER}-02"]
        assert show_work_order(session, f"{NUMBER}-02")["continues"] == first.number
        notes = session.scalars(
            select(TicketEvent.note)
            .where(TicketEvent.ticket_id == get_ticket(session, NUMBER).id)
            .order_by(TicketEvent.id)
        ).all()
        assert any("退回主管 工程主管" in n and "需木工技能" in n for n in notes)

    # The supervisor finds another way inside the team: the colleague who knows carpentry.
    with app.session() as session, transaction(session):
        helper = create_work_order(
            session,
            get_ticket(session, NUMBER),
            "repair",
            "上门拆装衣柜（有木工经验）",
            assignee_name="维修员二",
            now=later,
        )
        assert helper.number == f"{NUMBER}-03"
    shown = run("workorder", "show", f"{NUMBER}-02", "--format", "json")
    assert json.loads(shown.output)["continues"] == f"{NUMBER}-01"

    done_at = later + dt.timedelta(hours=3)
    with app.session() as session, transaction(session):
        status = complete_repair(
            session, NUMBER, "衣柜拆装完成", fee_amount="160", signed_by="周女士", now=done_at
        )
        assert status["revisit"] == f"{NUMBER}-04"
    with app.session() as session:
        states = dict(
            session.execute(
                select(WorkOrder.number, WorkOrder.status).where(
                    WorkOrder.number.like(f"{NUMBER}-%")
                )
            ).all()
        )
    assert states == {
        f"{NUMBER}-01": "returned",
        f"{NUMBER}-02": "done",
        f"{NUMBER}-03": "done",
        f"{NUMBER}-04": "open",
    }


def test_without_a_team_supervisor_the_service_centre_supervisor_takes_it(app, run):
    assert run("staff", "add", "保洁员", "--team", "cleaning").exit_code == 0
    assert (
        run("staff", "add", "客服主管", "--team", "service_center", "--level", "2").exit_code == 0
    )
    with app.session() as session, transaction(session):
        household = Household(code="H9", name="吴先生家", status="existing")
        session.add(household)
        session.flush()
        ticket = Ticket(
            number="TS20260509-0001",
            ticket_type="complaint",
            channel="online",
            household_id=household.id,
            summary="垃圾房散发恶臭",
            status="accepted",
            category="service",
            opened_at=NOW,
        )
        session.add(ticket)
        session.flush()
        order = create_work_order(session, ticket, "remedial", "清洗垃圾房", team_code="cleaning")
        assert order.assignee.name == "保洁员"
    result = run("workorder", "return", order.number, "--reason", "需外包方专业消杀")
    assert result.exit_code == 0, result.output
    assert "TS20260509-0001-02 → 客服主管" in result.output


def test_the_job_goes_to_the_carpenter_first_and_the_supervisor_closes_what_he_forwarded(
    app, request_for_carpentry, run
):
    """Dispatched with the skill it needs, the job skips the idle technician who cannot do
    carpentry and goes to 维修员二 though he is busier; a job no one has the skill for goes
    to the supervisor, who forwards it and closes his own order once the forwarded work is
    done, which finishes the repair."""
    with app.session() as session, transaction(session):
        check_warranty(session, NUMBER, "居家服务", now=NOW)
        quote_repair(session, NUMBER, "人工费 80 元/小时", now=NOW)
        first = start_repair(session, NUMBER, now=NOW, skill="木工")
        assert first.assignee.name == "维修员二" and first.skill == "木工"
        with pytest.raises(CrmError, match="没有登记“木工”技能"):
            create_work_order(session, get_ticket(session, NUMBER), "repair", "拆装",
                              assignee_name="维修员一", now=NOW, skill="木工")  # fmt: skip
        nobody = create_work_order(session, get_ticket(session, NUMBER), "repair", "改装橱柜",
                                   now=NOW, skill="橱柜改装")  # fmt: skip
        assert nobody.assignee.name == "工程主管"
    later = NOW + dt.timedelta(minutes=30)
    forwarded = run(
        "workorder", "forward", nobody.number, "--to", "维修员二", "--note", "有木工经验"
    )
    assert forwarded.exit_code == 0, forwarded.output
    with app.session() as session:
        child = session.scalar(select(WorkOrder).where(WorkOrder.parent_id == nobody.id))
        assert child.assignee.name == "维修员二" and child.skill == "橱柜改装"
        with pytest.raises(CrmError, match="由一线人员处理"):
            from crm.plugins.service.dispatch import forward_work_order

            forward_work_order(session, child.number, "工程主管", now=later)
        session.rollback()
        with pytest.raises(CrmError, match="转派的工作还未完成"):
            complete_work_order(session, nobody.number, "完成", now=later)
        child_no = child.number
    # 维修员二 finishes the forwarded job first, then everything closes with the fee signed.
    done_at = later + dt.timedelta(hours=2)
    with app.session() as session, transaction(session):
        status = complete_repair(
            session, NUMBER, "衣柜拆装完成", fee_amount="160", signed_by="周女士", now=done_at
        )
        assert get_ticket(session, NUMBER).status == "closed"
        assert status["revisit"] is not None
        states = dict(
            session.execute(
                select(WorkOrder.number, WorkOrder.status).where(
                    WorkOrder.number.like(f"{NUMBER}-%")
                )
            ).all()
        )
    assert states[first.number] == states[nobody.number] == states[child_no] == "done"
