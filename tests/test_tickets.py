"""Tickets: intake with register numbers, the eight steps as a transition table, commitments
and broken promises, the revisit hook, the shorter flows, and the `crm ticket` commands."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from crm import hookimpl
from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.core.models import Building, Household, Project, Purchase, Setting, Unit
from crm.core.security import User
from crm.plugins.service import rules, sla, tickets
from crm.plugins.service.models import (
    Commitment,
    Escalation,
    Staff,
    Team,
    Ticket,
    TicketEvent,
)

# 08:05 on 28 April 2026 in Asia/Shanghai, the morning of the flooded flat 1903.
T0 = dt.datetime(2026, 4, 28, 0, 5, tzinfo=dt.UTC)
STAFF = [
    # name, team code, title, level
    ("王客服", "service_center", "客服大使", 1),
    ("李安全", "security", "安全员", 1),
    ("张技术", "engineering", "技术员", 1),
    ("陈主管", "service_center", "客服主管", 2),
    ("刘经理", "service_center", "服务中心经理", 3),
    ("万总", "service_center", "总经理", 4),
]


def minutes(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


def make_world(session, households: int = 4, buildings: int = 1) -> dict:
    """A project with flats 1901… in one or more buildings, a household per flat, the staff
    ladder in the default teams (created by prepare_database)."""
    project = Project(name="四季花城")
    session.add(project)
    made = {"project": project, "households": [], "units": [], "buildings": []}
    for b in range(buildings):
        building = Building(project=project, name=f"{b + 2}区5栋")
        session.add(building)
        made["buildings"].append(building)
    for i in range(households):
        building = made["buildings"][i % buildings]
        unit = Unit(building=building, code=f"19{i + 3:02d}")
        household = Household(
            code=f"H{i + 1}", name=f"业主{i + 1}", status="existing", project=project
        )
        session.add_all([unit, household])
        session.flush()
        session.add(
            Purchase(
                contract_no=f"C{i + 1}",
                household_id=household.id,
                unit_id=unit.id,
                purchase_date=dt.date(2004, 5, 1),
                amount=Decimal(800000),
                handover_date=dt.date(2006, 1, 1),
            )
        )
        made["households"].append(household)
        made["units"].append(unit)
    teams = {t.code: t for t in session.scalars(select(Team))}
    for name, team, title, level in STAFF:
        session.add(Staff(name=name, team_id=teams[team].id, title=title, level=level))
    session.commit()
    return made


@pytest.fixture
def world(session):
    return make_world(session)


def opened(session, code="H1", kind="complaint", unit="1903", now=T0, summary="阳台地漏堵塞进水"):
    with transaction(session):
        ticket = tickets.open_ticket(session, code, kind, "phone", summary, unit=unit, now=now)
    return ticket.number


def events(session, number) -> list[str]:
    ticket = tickets.get_ticket(session, number)
    return list(
        session.scalars(
            select(TicketEvent.action)
            .where(TicketEvent.ticket_id == ticket.id)
            .order_by(TicketEvent.id)
        )
    )


# --- intake -----------------------------------------------------------------------------------


def test_register_numbers_per_type_and_day_and_intake_copies_the_place(session, world):
    first = opened(session)
    second = opened(session, "H2", unit="四季花城/2区5栋/1904")
    repair = opened(session, "H1", kind="报修", unit=None)
    next_day = opened(session, "H1", kind="enquiry", unit=None, now=T0 + dt.timedelta(days=1))
    assert (first, second, repair, next_day) == (
        "TS20260428-0001",
        "TS20260428-0002",
        "WX20260428-0001",
        "ZX20260429-0001",
    )
    ticket = tickets.get_ticket(session, first)
    unit = world["units"][0]
    assert ticket.unit_id == unit.id
    assert ticket.building_id == world["buildings"][0].id
    assert ticket.project_id == world["project"].id
    assert ticket.status == "accepted" and ticket.reported_by == "测试管理员"
    # The general complaint's clocks: respond in 10, resolve in 30, warn at 80 %.
    assert ticket.response_due_at == T0 + minutes(10)
    assert ticket.resolve_due_at == T0 + minutes(30)
    assert ticket.resolve_warn_at == T0 + minutes(24)
    assert tickets.get_ticket(session, repair).unit_id is None
    assert tickets.get_ticket(session, repair).project_id == world["project"].id


def test_register_numbers_grow_a_digit_after_the_9999th_of_a_day(session, world):
    first = opened(session)
    session.execute(update(Ticket).where(Ticket.number == first).values(number="TS20260428-9999"))
    assert opened(session, unit=None) == "TS20260428-10000"
    assert opened(session, unit=None) == "TS20260428-10001"


@pytest.mark.parametrize(
    ("unit", "message"),
    [("1999", "名下没有房号"), ("四季花城/9栋/1903", "找不到房号"), ("a/b", "写法不对")],
)
def test_bad_unit_is_refused_and_nothing_is_written(session, world, unit, message):
    with pytest.raises(CrmError, match=message), transaction(session):
        tickets.open_ticket(session, "H1", "complaint", "phone", "漏水", unit=unit, now=T0)
    assert session.scalar(select(func.count(Ticket.id))) == 0


def test_bad_type_channel_or_household_is_one_sentence(session, world):
    with pytest.raises(CrmError, match="不认识的工单类型"):
        tickets.open_ticket(session, "H1", "praise", "phone", "x")
    with pytest.raises(CrmError, match="不认识的渠道"):
        tickets.open_ticket(session, "H1", "complaint", "pigeon", "x")
    with pytest.raises(CrmError, match="找不到客户编号"):
        tickets.open_ticket(session, "H404", "complaint", "phone", "x")


# --- the eight steps --------------------------------------------------------------------------


class Surveys:
    """A stand-in satisfaction plugin: records what the revisit hook hands over."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def tickets_revisited(self, session, revisits):
        self.calls.extend(revisits)


@pytest.fixture
def surveys(app):
    """Registered with the test's App and with the CLI's plugin manager."""
    from crm.cli import plugin_manager

    plugin = Surveys()
    managers = [app.pm, plugin_manager()]
    for pm in managers:
        pm.register(plugin, name="test-surveys")
    yield plugin
    for pm in managers:
        pm.unregister(plugin)


def test_a_complaint_walks_the_eight_steps(session, world, surveys):
    number = opened(session)
    at = T0
    with transaction(session):
        tickets.step(session, number, "confirm", note="电话确认阳台进水", now=at + minutes(2))
        tickets.assess(
            session,
            number,
            "important",
            "服务",
            ["fix_now", "被重视"],
            now=at + minutes(4),
        )
        tickets.step(session, number, "investigate", now=at + minutes(6))
        tickets.reply(
            session,
            number,
            what="疏通地漏并清理积水",
            due_at=at + minutes(60),
            promised_by="张技术",
            now=at + minutes(8),
        )
    ticket = tickets.get_ticket(session, number)
    assert ticket.first_response_at == at + minutes(2)
    assert ticket.severity == "important" and ticket.category == "service"
    assert ticket.expectations == ["fix_now", "taken_seriously"]
    # Important: two hours to resolve, counted from the opening.
    assert ticket.resolve_due_at == at + minutes(120)
    # Dispatch by category: service goes to the customer service centre's front line.
    assert ticket.team.code == "service_center" and ticket.owner.name == "王客服"
    with pytest.raises(CrmError, match="须经客户确认"):
        tickets.close(session, number, customer_confirmed=False, now=at + minutes(30))
    with transaction(session):
        tickets.close(session, number, customer_confirmed=True, now=at + minutes(30))
        tickets.revisit(
            session,
            number,
            csat=4,
            nps=9,
            aspects={"响应速度": (8, 7)},
            comment="处理及时",
            now=at + dt.timedelta(days=1),
        )
    with pytest.raises(CrmError, match="还缺根本原因"):
        tickets.feedback(session, number, "", "雨季前检查地漏", now=at + dt.timedelta(days=2))
    with transaction(session):
        tickets.feedback(
            session,
            number,
            "雨前未检查阳台地漏",
            "雨季前逐户检查地漏，提醒装修户",
            now=at + dt.timedelta(days=2),
            causes=["expectation_unmet", "not_heeded"],
        )
    ticket = tickets.get_ticket(session, number)
    assert ticket.status == "completed" and ticket.customer_confirmed
    assert ticket.closed_at == at + minutes(30)
    assert ticket.commitments[0].status == "kept"
    assert events(session, number) == [
        "open",
        "confirm",
        "assess",
        "assign",
        "investigate",
        "promise",
        "reply",
        "close",
        "revisit",
        "feedback",
    ]
    steps = session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id, TicketEvent.action == "reply")
    ).one()
    assert (steps.from_status, steps.to_status, steps.actor) == (
        "investigating",
        "replied",
        "测试管理员",
    )
    [revisit] = surveys.calls
    facts = revisit.ticket
    assert (facts.number, facts.team, facts.category, revisit.csat, revisit.nps) == (
        number,
        "service_center",
        "service",
        4,
        9,
    )
    assert (revisit.aspects, revisit.comment, revisit.actor) == (
        {"响应速度": (8, 7)},
        "处理及时",
        "测试管理员",
    )
    # The survey is dated when the customer was called back, not when it was recorded.
    assert (revisit.at, revisit.channel) == (at + dt.timedelta(days=1), "phone")


def test_an_illegal_step_says_what_is_allowed_next(session, world):
    number = opened(session)
    with pytest.raises(CrmError) as refused:
        tickets.reply(session, number, "x", T0 + minutes(60), "张技术", now=T0 + minutes(1))
    message = str(refused.value)
    assert "正处于“受理”" in message and "不能“回复”（reply）" in message
    assert "只能“确认”（confirm）、“等待客户”（pause）" in message
    assert message.count("。") == 1
    with pytest.raises(CrmError, match="只能“确认”"):
        tickets.step(session, number, "investigate")
    session.rollback()
    # Nothing moved.
    assert tickets.get_ticket(session, number).status == "accepted"
    assert events(session, number) == ["open"]


def test_an_actions_brief_is_the_tickets_own_figures(session, world):
    """Every action answers with ticket_brief, which reads the ticket alone: its values are
    those show_ticket gives for the same keys (owner, next steps, level and breach included)."""
    number = opened(session)
    with transaction(session):
        tickets.step(session, number, "confirm", now=T0 + minutes(1))
        tickets.claim(session, number, "王客服", now=T0 + minutes(2))
    session.execute(update(Ticket).where(Ticket.number == number).values(resolve_breached=True))
    brief = tickets.ticket_brief(session, number)
    detail = tickets.show_ticket(session, number)
    assert brief == {key: detail[key] for key in brief}
    assert brief["owner"] == "王客服" and brief["resolve_breached"] is True
    assert brief["next_steps"] and brief["status"] == "confirmed"
    assert set(brief) == {
        "number", "type", "status", "next_steps", "severity", "owner", "level",
        "resolve_due_at", "resolve_breached",
    }  # fmt: skip


def test_the_transition_table_is_data_not_code():
    # Every target of every flow is a status, every action has a label: the table is whole.
    for flow in rules.FLOWS.values():
        for status, moves in flow.items():
            assert status in tickets.STATUSES
            for action, target in moves.items():
                assert action in tickets.ACTIONS
                assert target == tickets.RESUME or target in tickets.STATUSES


def test_waiting_for_the_customer_returns_to_the_step_it_left(session, world):
    number = opened(session)
    with transaction(session):
        tickets.step(session, number, "confirm", now=T0 + minutes(1))
        tickets.pause(session, number, note="业主在外地，约定回来再看", now=T0 + minutes(2))
    with pytest.raises(CrmError, match="只能“恢复处理”"):
        tickets.assess(session, number, "general", "service", ["be_heard"], now=T0 + minutes(3))
    session.rollback()
    with transaction(session):
        tickets.resume(session, number, now=T0 + minutes(62))
    ticket = tickets.get_ticket(session, number)
    assert ticket.status == "confirmed" and ticket.paused_at is None
    assert ticket.paused_minutes == pytest.approx(60)
    assert ticket.resolve_due_at == T0 + minutes(90)


def test_a_dissatisfied_revisit_reopens_and_climbs_a_level(session, world, surveys):
    number = opened(session, kind="repair")
    with transaction(session):
        tickets.assess(session, number, "general", "engineering", [], now=T0 + minutes(2))
        tickets.step(session, number, "investigate", now=T0 + minutes(3))
        tickets.close(session, number, True, now=T0 + minutes(20))
    with pytest.raises(CrmError, match="不算不满意"):
        tickets.revisit(session, number, csat=3, reopen_ticket=True, now=T0 + minutes(60))
    session.rollback()
    assert surveys.calls == []
    with transaction(session):
        tickets.revisit(
            session, number, csat=1, comment="又堵了", reopen_ticket=True, now=T0 + minutes(60)
        )
    ticket = tickets.get_ticket(session, number)
    assert ticket.status == "investigating" and ticket.reopen_count == 1
    assert ticket.closed_at is None and not ticket.customer_confirmed
    # A fresh resolution target from the reopening.
    assert ticket.resolve_due_at == T0 + minutes(90)
    assert ticket.escalation_level == 2
    escalation = session.scalars(select(Escalation)).one()
    assert (escalation.rule, escalation.level) == ("reopen", 2)
    assert session.get(Staff, escalation.to_staff_id).name == "陈主管"
    assert len(surveys.calls) == 1


def test_an_unhappy_customer_is_followed_until_satisfied_or_a_manager_says_why_not(
    session, world, surveys
):
    """Seen: a revisit with CSAT 1 and no --reopen went on to feedback and completion."""
    number = opened(session, kind="repair")
    with transaction(session):
        tickets.assess(session, number, "general", "engineering", [], now=T0 + minutes(2))
        tickets.step(session, number, "investigate", now=T0 + minutes(3))
        tickets.close(session, number, True, now=T0 + minutes(20))
    with pytest.raises(CrmError, match="须跟进到客户满意为止"):
        tickets.revisit(session, number, csat=1, now=T0 + minutes(60))
    session.rollback()
    session.info["user"] = User("小王", "agent")
    with pytest.raises(CrmError, match="无权确认客户不满意的工单不再处理"):
        tickets.revisit(session, number, csat=2, override="客户要求超出合同", now=T0 + minutes(60))
    session.rollback()
    session.info["user"] = User("刘经理", "manager")
    with pytest.raises(CrmError, match="二选一"):
        tickets.revisit(
            session, number, csat=1, reopen_ticket=True, override="x", now=T0 + minutes(60)
        )
    session.rollback()
    with pytest.raises(CrmError, match="无需经理确认"):
        tickets.revisit(session, number, csat=4, override="x", now=T0 + minutes(60))
    session.rollback()
    assert surveys.calls == []
    with transaction(session):
        tickets.revisit(
            session, number, csat=2, override="客户要求更换整套设备，经鉴定不属质量问题",
            now=T0 + minutes(60),
        )  # fmt: skip
    ticket = tickets.get_ticket(session, number)
    assert ticket.status == "revisited" and ticket.reopen_count == 0
    override = session.scalars(
        select(TicketEvent).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.action == "override"
        )
    ).one()
    assert override.actor == "刘经理" and "不属质量问题" in override.note
    assert len(surveys.calls) == 1  # the answers still reach satisfaction monitoring


def test_the_threshold_of_an_unhappy_revisit_is_a_setting(session, world, surveys):
    number = opened(session, kind="repair")
    with transaction(session):
        session.add(Setting(key="service.dissatisfied_csat", value="3"))
        tickets.assess(session, number, "general", "engineering", [], now=T0 + minutes(2))
        tickets.step(session, number, "investigate", now=T0 + minutes(3))
        tickets.close(session, number, True, now=T0 + minutes(20))
    with pytest.raises(CrmError, match="不高于 3 分"):
        tickets.revisit(session, number, csat=3, now=T0 + minutes(60))


def test_no_ticket_reaches_its_last_step_with_its_work_open(session, world, surveys):
    """Seen: a complaint reached its last step while its remedial and corrective work orders
    were still open."""
    from crm.plugins.service import dispatch

    number = opened(session)
    with transaction(session):
        tickets.step(session, number, "confirm", now=T0 + minutes(1))
        tickets.assess(session, number, "general", "service", ["fix_now"], now=T0 + minutes(2))
        ticket = tickets.get_ticket(session, number)
        corrective = dispatch.create_work_order(
            session, ticket, "corrective", "雨季前逐户检查地漏", now=T0 + minutes(3)
        )
        tickets.step(session, number, "investigate", now=T0 + minutes(4))
        tickets.reply(session, number, what="疏通", due_at=T0 + minutes(60), promised_by="张技术",
                      now=T0 + minutes(5))  # fmt: skip
        tickets.close(session, number, True, now=T0 + minutes(20))
        tickets.revisit(session, number, csat=5, now=T0 + minutes(30))
    with pytest.raises(CrmError, match=f"还有未完成的派工单 {corrective.number}（纠正措施）"):
        tickets.feedback(
            session, number, "地漏未检查", "逐户检查", now=T0 + minutes(40), causes=["work_error"]
        )
    session.rollback()
    with transaction(session):
        dispatch.complete_work_order(session, corrective.number, "已检查", now=T0 + minutes(50))
        tickets.feedback(
            session, number, "地漏未检查", "逐户检查", now=T0 + minutes(55), causes=["work_error"]
        )
    assert tickets.get_ticket(session, number).status == "completed"


def test_a_step_done_earlier_is_recorded_when_it_happened(session, world):
    """Seen: a call taken at 08:05 and typed in at 08:40 was stamped 08:40."""
    typed = T0 + minutes(35)
    with transaction(session):
        ticket = tickets.open_ticket(
            session, "H1", "complaint", "phone", "阳台进水", unit="1903", now=typed, at=T0
        )
        number = ticket.number
        tickets.step(session, number, "confirm", now=typed + minutes(1), at=T0 + minutes(3))
    ticket = tickets.get_ticket(session, number)
    # The clocks run from the call: answered at 08:08 within the 10 minutes.
    assert (ticket.opened_at, ticket.created_at) == (T0, typed)
    assert ticket.first_response_at == T0 + minutes(3)
    assert ticket.response_due_at == T0 + minutes(10) and not ticket.response_breached
    rows = session.execute(
        select(TicketEvent.action, TicketEvent.at, TicketEvent.entered_at)
        .where(TicketEvent.ticket_id == ticket.id)
        .order_by(TicketEvent.id)
    ).all()
    assert [tuple(r) for r in rows] == [
        ("open", T0, typed),
        ("confirm", T0 + minutes(3), typed + minutes(1)),
    ]
    with pytest.raises(CrmError, match="晚于现在"):
        tickets.step(session, number, "investigate", now=typed, at=typed + minutes(5))
    session.rollback()
    with pytest.raises(CrmError, match="早于这张工单进入当前步骤的时间"):
        tickets.assess(session, number, "general", "service", ["fix_now"], now=typed,
                       at=T0 + minutes(1))  # fmt: skip
    session.rollback()
    with pytest.raises(CrmError, match="早于工单受理时间"):
        tickets.record_contact(session, number, "phone", "再次来电", now=typed,
                               at=T0 - minutes(1))  # fmt: skip


def test_cli_takes_when_it_happened_and_refuses_the_future(run, app):
    with app.session() as session:
        make_world(session)
    result = run(
        "ticket", "open", "H1", "--type", "complaint", "--channel", "phone", "--summary", "漏水",
        "--at", "2026-04-28 08:05", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    number = json.loads(result.stdout)["number"]
    assert number == "TS20260428-0001"  # the number is of the day the call came in
    shown = json.loads(run("ticket", "show", number, "--format", "json").stdout)
    assert shown["opened_at"].startswith("2026-04-28T00:05")
    future = run("ticket", "step", number, "confirm", "--at", "2099-01-01 08:00")
    assert future.exit_code == 1 and "晚于现在" in future.output
    bad = run("ticket", "step", number, "confirm", "--at", "明天早上")
    assert bad.exit_code == 1 and "2026-12-02 08:05" in bad.output and "Traceback" not in bad.output


def test_shorter_flows_for_enquiries_and_suggestions(session, world):
    enquiry = opened(session, kind="enquiry", unit=None)
    with pytest.raises(CrmError, match="只能“回复”（reply）"):
        tickets.step(session, enquiry, "confirm")
    session.rollback()
    with transaction(session):
        tickets.reply(session, enquiry, note="告知物业费缴纳方式", now=T0 + minutes(5))
        tickets.close(session, enquiry, True, now=T0 + minutes(6))
    assert tickets.get_ticket(session, enquiry).status == "closed"
    assert tickets.allowed_actions(tickets.get_ticket(session, enquiry)) == []
    suggestion = opened(session, kind="suggestion", unit=None)
    with transaction(session):
        tickets.assess(session, suggestion, "general", "design", [], now=T0 + minutes(5))
        tickets.reply(session, suggestion, note="已转设计部", now=T0 + minutes(50))
        tickets.close(session, suggestion, True, now=T0 + minutes(55))
        tickets.feedback(
            session, suggestion, "车库入口坡度大", "新项目坡道改缓", now=T0 + minutes(60)
        )
    assert tickets.get_ticket(session, suggestion).status == "completed"


# --- commitments ------------------------------------------------------------------------------


def _replied(session, promised_by="张技术", due=60):
    number = opened(session)
    with transaction(session):
        tickets.step(session, number, "confirm", now=T0 + minutes(1))
        tickets.assess(session, number, "important", "service", ["fix_now"], now=T0 + minutes(2))
        tickets.step(session, number, "investigate", now=T0 + minutes(3))
        tickets.reply(
            session, number, "疏通地漏", T0 + minutes(due), promised_by, now=T0 + minutes(4)
        )
    return number


@pytest.mark.parametrize("who", ["我们", "客服中心", " ", "We"])
def test_a_promise_names_one_person(session, world, who):
    with pytest.raises(CrmError, match="具体的一个人"):
        _replied(session, promised_by=who)


def test_a_complaint_reply_needs_what_when_and_who(session, world):
    number = opened(session)
    with transaction(session):
        tickets.step(session, number, "confirm", now=T0 + minutes(1))
        tickets.assess(session, number, "general", "service", ["be_heard"], now=T0 + minutes(2))
        tickets.step(session, number, "investigate", now=T0 + minutes(3))
    with pytest.raises(CrmError, match="做什么、何时前完成、由谁负责"):
        tickets.reply(session, number, what="疏通", now=T0 + minutes(4))


def test_a_broken_promise_demands_apology_reason_and_remedy(session, world):
    number = _replied(session, due=60)
    with transaction(session):
        found = sla.check_clocks(session, T0 + minutes(61))
    assert found["commitment_broken"] == [number]
    ticket = tickets.get_ticket(session, number)
    assert ticket.commitments[0].status == "broken"
    with pytest.raises(CrmError, match="须先向客户致歉、说明原因并提出补救"):
        tickets.add_commitment(
            session, number, "再次疏通", T0 + minutes(120), "张技术", now=T0 + minutes(62)
        )
    session.rollback()
    with pytest.raises(CrmError, match="还缺原因、补救措施"):
        tickets.settle_broken_commitment(session, number, "对不起", "", " ", now=T0 + minutes(62))
    session.rollback()
    with pytest.raises(CrmError, match="须先向客户致歉"):
        tickets.close(session, number, True, now=T0 + minutes(62))
    session.rollback()
    with transaction(session):
        tickets.settle_broken_commitment(
            session,
            number,
            "向李小姐当面道歉",
            "配件缺货",
            "今天下午换新地漏并免费清洁",
            now=T0 + minutes(63),
        )
        tickets.add_commitment(
            session, number, "换新地漏", T0 + minutes(300), "张技术", now=T0 + minutes(64)
        )
        tickets.keep_commitment(session, number, now=T0 + minutes(200))
        tickets.close(session, number, True, now=T0 + minutes(210))
    commitments = tickets.get_ticket(session, number).commitments
    assert [c.status for c in commitments] == ["broken", "kept"]
    assert commitments[0].apology == "向李小姐当面道歉" and commitments[0].remedy
    assert "commitment_settled" in events(session, number)


def test_a_promise_known_to_fail_is_settled_before_its_due_time(session, world):
    number = _replied(session, due=120)
    with pytest.raises(CrmError, match="还有一项承诺未了结"):
        tickets.add_commitment(
            session, number, "另一件事", T0 + minutes(200), "王客服", now=T0 + minutes(10)
        )
    session.rollback()
    with transaction(session):
        tickets.settle_broken_commitment(
            session, number, "抱歉", "厂家停产", "改用同规格替代品", now=T0 + minutes(10)
        )
    commitment = session.scalars(select(Commitment)).one()
    assert commitment.status == "broken" and commitment.settled_at == T0 + minutes(10)


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_walks_a_ticket_and_shows_it(run, app, surveys):
    with app.session() as session:
        make_world(session)
    result = run(
        "ticket",
        "open",
        "H1",
        "--type",
        "投诉",
        "--channel",
        "电话",
        "--summary",
        "阳台进水",
        "--unit",
        "1903",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    number = json.loads(result.output)["number"]
    assert number.startswith("TS") and json.loads(result.output)["status"] == "accepted"
    result = run("ticket", "step", number, "investigate")
    assert result.exit_code == 1
    assert result.output.strip().startswith("错误：") and "只能“确认”" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert run("ticket", "step", number, "confirm", "--note", "已确认").exit_code == 0
    result = run(
        "ticket",
        "assess",
        number,
        "--severity",
        "重要",
        "--category",
        "服务",
        "--expect",
        "fix_now,被倾听",
    )
    assert result.exit_code == 0, result.output
    assert run("ticket", "step", number, "investigate").exit_code == 0
    # A refused reply leaves no commitment behind.
    result = run(
        "ticket", "reply", number, "--what", "疏通", "--due", "2000-01-01 10:00", "--by", "张技术"
    )
    assert result.exit_code == 1 and "将来" in result.output
    with app.session() as session:
        assert session.scalar(select(func.count(Commitment.id))) == 0
    result = run(
        "ticket",
        "reply",
        number,
        "--what",
        "疏通地漏",
        "--due",
        "2099-01-01 10:00",
        "--by",
        "张技术",
    )
    assert result.exit_code == 0, result.output
    assert run("ticket", "close", number).exit_code == 1
    assert run("ticket", "close", number, "--confirmed").exit_code == 0
    result = run("ticket", "revisit", number, "--csat", "5", "--aspect", "态度=7:9")
    assert result.exit_code == 0, result.output
    assert surveys.calls[0].aspects == {"态度": (7, 9)}
    result = run("ticket", "show", number, "--format", "json")
    shown = json.loads(result.output)
    # JSON keeps the codes; the table shows them in Chinese.
    assert shown["status"] == "revisited" and shown["commitments"][0]["promised_by"] == "张技术"
    assert [e["action"] for e in shown["events"]][:3] == ["open", "confirm", "assess"]
    table = run("ticket", "show", number).output
    assert "【处理记录】" in table and "【承诺】" in table and "疏通地漏" in table
    step_line = next(line for line in table.splitlines() if line.startswith("当前步骤："))
    assert "受理登记" in table and step_line.endswith("回访") and "revisited" not in table
    listed = run("ticket", "list", "--status", "revisited", "--format", "csv").output
    assert number in listed and listed.splitlines()[0].startswith("number,")


def test_cli_duty_desk_overdue_and_at_risk(run, app, fixed_now):
    now = fixed_now  # `ticket list` and `ticket check` count from the clock
    with app.session() as session:
        make_world(session)
        late = opened(session, "H1", now=now - minutes(40))
        risky = opened(session, "H2", unit=None, now=now - minutes(26))
        opened(session, "H3", unit=None, now=now - minutes(1))
        with transaction(session):  # answered in time: only the resolution clock is at risk
            tickets.step(session, risky, "confirm", now=now - minutes(25))
    overdue = json.loads(run("ticket", "list", "--overdue", "--format", "json").output)
    at_risk = json.loads(run("ticket", "list", "--at-risk", "--format", "json").output)
    assert [r["number"] for r in overdue] == [late]
    assert [r["number"] for r in at_risk] == [risky]
    assert run("ticket", "list", "--project", "四季花城").exit_code == 0
    result = run("ticket", "list", "--team", "nobody")
    assert result.exit_code == 4 and "找不到团队" in result.output
    checked = run("ticket", "check", "--format", "json")
    assert checked.exit_code == 0, checked.output
    rows = {r["kind"]: r for r in json.loads(checked.output)}
    assert rows["解决超时"]["numbers"] == late and rows["即将超时预警"]["numbers"] == risky
    assert rows["已升级"]["numbers"] == late


def test_cli_writes_need_a_writing_role(run, app):
    with app.session() as session:
        make_world(session)
    result = run(
        "ticket",
        "open",
        "H1",
        "--type",
        "complaint",
        "--channel",
        "phone",
        "--summary",
        "x",
        as_="小赵:analyst",
    )
    assert result.exit_code == 3 and "无权登记工单" in result.output
