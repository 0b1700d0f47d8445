"""Dispatch: default teams, assignment by category then by open load, work orders under the
ticket's register number, completion, and the CLI for teams, staff and work orders."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from crm.core.db import transaction
from crm.core.errors import CrmError, PermissionDenied
from crm.core.models import Household
from crm.core.security import User
from crm.plugins.service.dispatch import (
    add_staff,
    assign_ticket,
    complete_work_order,
    create_work_order,
    return_to_supervisor,
)
from crm.plugins.service.models import Team, Ticket, TicketEvent, WorkOrder
from crm.plugins.service.tickets import get_ticket

NOW = dt.datetime(2026, 4, 28, 1, 0, tzinfo=dt.UTC)


def _ticket(session, number, category="engineering", status="accepted", owner=None, **extra):
    household = session.scalar(select(Household).where(Household.code == "H1"))
    if household is None:
        household = Household(code="H1", name="李小姐家", status="existing")
        session.add(household)
        session.flush()
    ticket = Ticket(
        number=number,
        ticket_type=extra.pop("ticket_type", "complaint"),
        channel="phone",
        household_id=household.id,
        summary="阳台地漏堵塞，雨水进房",
        status=status,
        category=category,
        opened_at=NOW,
        owner_id=owner.id if owner else None,
        **extra,
    )
    session.add(ticket)
    session.flush()
    return ticket


@pytest.fixture
def crew(app):
    """The engineering team with two technicians and a supervisor; one retired technician."""
    with app.session() as session, transaction(session):
        add_staff(session, "技术员B", "engineering", "技术员")
        add_staff(session, "技术员A", "engineering", "技术员")
        add_staff(session, "工程主管", "engineering", "主管", level=2)
        old = add_staff(session, "技术员C", "engineering", "技术员")
        old.active = False


def test_default_teams_are_created_once(app):
    app.init()
    with app.session() as session:
        teams = session.scalars(select(Team).order_by(Team.id)).all()
    assert [t.code for t in teams] == [
        "service_center",
        "engineering",
        "security",
        "cleaning",
        "vendor_cleaning",
    ]
    assert {t.kind for t in teams} == {
        "customer_service",
        "technical",
        "security",
        "cleaning",
        "vendor",
    }
    engineering = teams[1]
    assert {"engineering", "intercom", "waterproofing"} <= set(engineering.handles)


def test_assignment_goes_to_the_least_loaded_front_line_person(app, crew):
    with app.session() as session, transaction(session):
        # Equal load: the tie goes by name.
        first = assign_ticket(session, _ticket(session, "TS20260428-0001"), now=NOW)
        assert first.name == "技术员A"
        second = assign_ticket(session, _ticket(session, "TS20260428-0002"), now=NOW)
        assert second.name == "技术员B"
        # A closed ticket is no load: 甲's only ticket closes, so 甲 is the lighter again.
        get_ticket(session, "TS20260428-0001").status = "closed"
        third = assign_ticket(session, _ticket(session, "TS20260428-0003"), now=NOW)
        assert third.name == "技术员A"
        # An open work order is load too.
        ticket = _ticket(session, "TS20260428-0004")
        create_work_order(session, ticket, "remedial", "疏通地漏", assignee_name="技术员A", now=NOW)
        fourth = assign_ticket(session, ticket, now=NOW)
        assert fourth.name == "技术员B"
        assert ticket.team.code == "engineering" and ticket.owner_id == fourth.id
        events = session.scalars(
            select(TicketEvent.note).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.action == "assign"
            )
        ).all()
        assert events == ["派给 工程技术部：技术员B"]


def test_category_without_a_team_goes_to_the_customer_service_centre(app):
    with app.session() as session, transaction(session):
        ticket = _ticket(session, "ZX20260428-0001", category=None, ticket_type="enquiry")
        assert assign_ticket(session, ticket, now=NOW) is None  # nobody registered yet
        assert ticket.team.code == "service_center" and ticket.owner_id is None
        sales = _ticket(session, "TS20260428-0009", category="sales_management")
        assign_ticket(session, sales, now=NOW)
        assert sales.team.code == "service_center"


def test_work_orders_share_the_register_number_and_are_balanced(app, crew):
    with app.session() as session, transaction(session):
        ticket = _ticket(session, "TS20260428-0001")
        due = NOW + dt.timedelta(hours=4)
        one = create_work_order(session, ticket, "remedial", "清理进水", due_at=due, now=NOW)
        two = create_work_order(session, ticket, "纠正措施", "雨前检查地漏", now=NOW)
        assert (one.number, two.number) == ("TS20260428-0001-01", "TS20260428-0001-02")
        assert one.team.code == two.team.code == "engineering"
        assert {one.assignee.name, two.assignee.name} == {"技术员A", "技术员B"}
        assert two.kind == "corrective" and one.due_at == due
        cleaning = create_work_order(
            session, ticket, "remedial", "清洗地面", team_code="保洁部", now=NOW
        )
        assert cleaning.team.code == "cleaning" and cleaning.assignee is None
        done = complete_work_order(session, one.number, "已清理", now=NOW)
        assert done.status == "done" and done.completed_at == NOW
        with pytest.raises(CrmError, match="已完成"):
            complete_work_order(session, one.number, "再次完成", now=NOW)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "lunch"}, "不认识的派工类型"),
        ({"description": " "}, "派工内容"),
        ({"due_at": NOW - dt.timedelta(minutes=1)}, "时限已过"),
        ({"assignee_name": "技术员A", "team_code": "security"}, "不属于"),
        ({"assignee_name": "技术员C"}, "已停用"),
        ({"team_code": "nowhere"}, "找不到团队"),
    ],
)
def test_bad_work_orders_are_refused(app, crew, kwargs, message):
    with app.session() as session:
        ticket = _ticket(session, "TS20260428-0001")
        args = {"kind": "remedial", "description": "清理进水"} | kwargs
        with pytest.raises(CrmError, match=message):
            create_work_order(session, ticket, now=NOW, **args)
        session.rollback()


def test_a_team_without_a_supervisor_cannot_take_a_returned_job(app):
    with app.session() as session, transaction(session):
        add_staff(session, "安全员王", "security", "安全员")
        ticket = _ticket(session, "TS20260428-0001", category="security")
        order = create_work_order(session, ticket, "remedial", "巡查", now=NOW)
    with app.session() as session:
        with pytest.raises(CrmError, match="没有登记主管"):
            return_to_supervisor(session, order.number, "需要消防专业人员", now=NOW)
        session.rollback()
        assert session.get(WorkOrder, order.id).status == "open"


def test_an_analyst_may_not_dispatch(app, crew):
    with app.session() as session, transaction(session):
        ticket = _ticket(session, "TS20260428-0001")
    with app.session() as session:
        session.info["user"] = User("分析员小周", "analyst")
        ticket = get_ticket(session, "TS20260428-0001")
        with pytest.raises(PermissionDenied):
            create_work_order(session, ticket, "remedial", "清理", now=NOW)
        with pytest.raises(PermissionDenied):
            add_staff(session, "新人", "engineering", "技术员")


def test_cli_teams_staff_and_work_orders(app, run):
    listed = run("team", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    assert "工程技术部" in [row["name"] for row in json.loads(listed.output)]
    assert (
        run(
            "team",
            "add",
            "greening",
            "--name",
            "绿化组",
            "--kind",
            "外包方",
            "--handles",
            "landscaping，lawn",
        ).exit_code
        == 0
    )
    assert (
        run("staff", "add", "技术员甲", "--team", "engineering", "--title", "技术员").exit_code == 0
    )
    assert run("staff", "add", "工程主管", "--team", "工程技术部", "--level", "2").exit_code == 0
    with app.session() as session, transaction(session):
        _ticket(session, "TS20260428-0001")

    created = run(
        "workorder",
        "create",
        "TS20260428-0001",
        "--kind",
        "remedial",
        "--description",
        "清理进水",
        "--due",
        "2099-01-01 18:00",
    )
    assert created.exit_code == 0, created.output
    assert "TS20260428-0001-01 → 工程技术部：技术员甲" in created.output
    staff = json.loads(run("staff", "list", "--team", "engineering", "--format", "json").output)
    assert {r["name"]: r["open_load"] for r in staff} == {"技术员甲": 1, "工程主管": 0}
    csv_out = run("workorder", "list", "--ticket", "TS20260428-0001", "--format", "csv").output
    assert csv_out.splitlines()[0].startswith("number,ticket,household,kind,origin,team")
    assert ",补救措施,客户," in csv_out  # codes read in Chinese outside JSON

    returned = run("workorder", "return", "TS20260428-0001-01", "--reason", "需要专业木工")
    assert returned.exit_code == 0, returned.output
    assert "TS20260428-0001-02 → 工程主管" in returned.output
    shown = json.loads(run("workorder", "show", "TS20260428-0001-01", "--format", "json").output)
    assert shown["status"] == "returned" and shown["continued_by"] == ["TS20260428-0001-02"]
    assert (
        run("workorder", "done", "TS20260428-0001-02", "--result", "主管协调木工完成").exit_code
        == 0
    )
    done = json.loads(run("workorder", "list", "--status", "done", "--format", "json").output)
    assert [r["number"] for r in done] == ["TS20260428-0001-02"]

    bad = run(
        "workorder",
        "create",
        "TS20260428-0001",
        "--kind",
        "remedial",
        "--description",
        "x",
        "--due",
        "明天下午",
    )
    assert bad.exit_code != 0 and "看不懂时间" in bad.output and "Traceback" not in bad.output
    denied = run("team", "add", "x", "--name", "X", "--kind", "vendor", as_="小周:agent")
    assert denied.exit_code != 0 and "无权" in denied.output
    with app.session() as session:
        assert session.scalar(select(func.count(WorkOrder.id))) == 2


def test_cli_actions_answer_in_json(app, run):
    def json_of(*args: str) -> dict:
        result = run(*args, "--format", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    team = json_of("team", "add", "greening", "--name", "绿化组", "--kind", "vendor")
    assert (team["code"], team["kind"], team["handles"]) == ("greening", "vendor", [])
    person = json_of("staff", "add", "技术员甲", "--team", "engineering", "--skills", "水电,木工")
    assert (person["team"], person["level"], person["skills"]) == (
        "工程技术部",
        1,
        ["水电", "木工"],
    )
    json_of("staff", "add", "工程主管", "--team", "engineering", "--level", "2")
    with app.session() as session, transaction(session):
        _ticket(session, "TS20260428-0001")
    order = json_of(
        "workorder", "create", "TS20260428-0001", "--kind", "remedial", "--description", "清理进水"
    )
    assert (order["number"], order["ticket"], order["assignee"]) == (
        "TS20260428-0001-01",
        "TS20260428-0001",
        "技术员甲",
    )
    returned = json_of("workorder", "return", order["number"], "--reason", "需要专业木工")
    assert returned["continues"] == order["number"] and returned["assignee"] == "工程主管"
    done = json_of("workorder", "done", returned["number"], "--result", "主管协调木工完成")
    assert done["status"] == "done" and done["result"] == "主管协调木工完成"
    period = json_of("repair", "period", "防水防渗漏", "72")
    assert (period["item"], period["months"], period["statutory_months"]) == (
        "waterproofing",
        72,
        60,
    )
