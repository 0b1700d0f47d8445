"""Coordination: the cycle collects pending feedback, has it assessed and the chosen plans carried
out by service handling, each feedback exactly once (across crashes and concurrent cycles), and
records every decision; a missing step stops the cycle before anything is collected.

Test plugins stand in for the assessment (and, to inject crashes, in front of service
handling); collection is the real satisfaction plugin, dispatch the real service plugin.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
from sqlalchemy import func, select

from crm import hookimpl
from crm.core.app import App
from crm.core.chain import Assessment, Feedback, Plan
from crm.core.clock import to_local
from crm.core.db import transaction
from crm.core.models import Household, Project
from crm.core.plugins import make_plugin_manager
from crm.core.security import User
from crm.plugins import BUILTIN_PLUGINS
from crm.plugins.coordination.cycle import MissingStep, list_decisions, run_cycle
from crm.plugins.coordination.models import Decision
from crm.plugins.satisfaction.models import FeedbackRecord
from crm.plugins.service.models import Staff, Team, Ticket, TicketEvent, WorkOrder

NOW = dt.datetime(2026, 4, 28, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
ADMIN = User("测试管理员", "admin")


class Assessor:
    """Stands in for profitability: an apology visit by customer service, or a priority
    repair by the technical team when the feedback mentions a leak; `fail` raises on the
    first call to simulate a crash in the middle of the cycle."""

    def __init__(self, fail: bool = False, skip: set[str] | None = None):
        self.fail = fail
        self.skip = skip or set()
        self.seen: list[str] = []

    @hookimpl
    def assess_feedback(self, session, feedback: list[Feedback]) -> list[Assessment]:
        if self.fail:
            self.fail = False
            raise RuntimeError("评估服务中途崩溃")
        self.seen += [item.id for item in feedback]
        answers = []
        for item in feedback:
            if item.household_code in self.skip:
                continue
            apology = Plan(
                "上门致歉",
                300.0,
                1000 * item.strength,
                "先上门当面致歉",
                team="customer_service",
                ticket_type="complaint",
                retention_gain=0.1,
            )
            repair = Plan("优先维修", 800.0, 2000 if "漏水" in item.reason else 100,
                          "漏水影响生活，当天修复", team="technical", ticket_type="repair")  # fmt: skip
            best = max((apology, repair), key=lambda plan: plan.expected_value)
            answers.append(Assessment(item.id, [apology, repair], best))
        return answers


class Crashing:
    """In front of service handling: raises on the first call, then lets service answer."""

    def __init__(self):
        self.calls = 0

    @hookimpl
    def carry_out_plans(self, session, decisions):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("派工时进程崩溃")
        # No answer: the next implementation, service handling, carries the plans out.


def make_app(db_url: str, monkeypatch, *plugins, disable: str = "profitability") -> App:
    """Another App on the test's database (its own engine and plugin manager) whose chain has
    the named plugins switched off and the given test plugins added."""
    monkeypatch.setenv("CRM_DISABLE_PLUGINS", disable)
    instance = App(db_url, user=ADMIN, builtins=BUILTIN_PLUGINS)
    monkeypatch.delenv("CRM_DISABLE_PLUGINS")
    for plugin in plugins:
        instance.pm.register(plugin)
    return instance


@pytest.fixture
def homes(app) -> dict[str, int]:
    """A project with households H1..H6 and front-line staff: two in customer service (one
    already busy with an open ticket), one technician."""
    with app.session() as session, transaction(session):
        project = Project(name="城市花园")
        people = [
            Household(code=f"H{i}", name=f"业主{i}家", status="existing", project=project)
            for i in range(1, 7)
        ]
        session.add_all(people)
        session.flush()
        teams = {t.kind: t for t in session.scalars(select(Team))}
        centre, tech = teams["customer_service"], teams["technical"]
        busy = Staff(name="客服甲", team_id=centre.id, title="客服大使", level=1)
        session.add_all(
            [
                busy,
                Staff(name="客服乙", team_id=centre.id, title="客服大使", level=1),
                Staff(name="客服主管", team_id=centre.id, title="主管", level=2),
                Staff(name="技术员", team_id=tech.id, title="技术员", level=1),
            ]
        )
        session.flush()
        session.add(
            Ticket(number="ZX20260401-0001", ticket_type="enquiry", channel="phone",
                   household_id=people[0].id, summary="咨询", status="accepted",
                   opened_at=NOW - dt.timedelta(days=1), owner_id=busy.id)
        )  # fmt: skip
        return {"project": project.id} | {h.code: h.id for h in people}


def add_feedback(app, homes, *specs) -> list[int]:
    """specs: (household code or None for the project, reason, strength)."""
    with app.session() as session, transaction(session):
        records = [
            FeedbackRecord(
                key=f"test:{i}:{code}",
                kind="satisfaction_drop" if code else "project_drop",
                household_id=homes[code] if code else None,
                project_id=None if code else homes["project"],
                reason=reason,
                strength=strength,
                status="pending",
                detected_at=NOW - dt.timedelta(hours=1),
            )
            for i, (code, reason, strength) in enumerate(specs)
        ]
        session.add_all(records)
        session.flush()
        return [r.id for r in records]


def cycle(app, **options):
    with app.session() as session:
        return run_cycle(session, now=NOW, **options)


def decisions(app) -> list[Decision]:
    with app.session() as session:
        return session.scalars(select(Decision).order_by(Decision.id)).all()


def count(app, model) -> int:
    with app.session() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def assessor(app):
    plugin = Assessor()
    app.pm.register(plugin, name="test-assessor")
    yield plugin
    app.pm.unregister(plugin)


def new_tickets(app) -> list[Ticket]:
    with app.session() as session:
        return session.scalars(
            select(Ticket).where(Ticket.number != "ZX20260401-0001").order_by(Ticket.id)
        ).all()


def statuses(app) -> list[str]:
    return [d.status for d in decisions(app)]


def test_a_cycle_dispatches_each_feedback_to_its_plans_team_with_the_reasons(app, homes, assessor):
    first, second = add_feedback(
        app,
        homes,
        ("H2", "客户最近一次满意度评分 1 分。", 0.9),
        ("H3", "卫生间漏水三次未修好。", 0.6),
    )
    report = cycle(app)
    assert report.as_dict() | {"seconds": 0} == {
        "collected": 2, "assessed": 2, "no_plan": 0, "dispatched": 2, "undispatched": 0,
        "closed": 0, "seconds": 0,
    }  # fmt: skip
    with app.session() as session:
        rows = session.execute(
            select(Ticket, Team.code, Staff.name, Household.code)
            .join(Team, Ticket.team_id == Team.id)
            .join(Staff, Ticket.owner_id == Staff.id)
            .join(Household, Ticket.household_id == Household.id)
            .where(Ticket.number != "ZX20260401-0001")
            .order_by(Ticket.id)
        ).all()
        orders = session.scalars(select(WorkOrder).order_by(WorkOrder.id)).all()
        events = session.execute(
            select(TicketEvent.ticket_id, TicketEvent.action).order_by(TicketEvent.id)
        ).all()
        records = session.scalars(select(FeedbackRecord).order_by(FeedbackRecord.id)).all()
    # Strongest first; the apology goes to customer service (客服乙: 客服甲 already has work),
    # the leak to the technical team as a repair.
    (apology, team1, owner1, home1), (repair, team2, owner2, home2) = rows
    # The cycle's clock reaches service handling: the tickets are opened at the cycle's time.
    assert apology.opened_at == repair.opened_at == NOW
    day = f"{to_local(NOW):%Y%m%d}"
    assert (apology.number, apology.ticket_type, team1, owner1, home1) == (
        f"TS{day}-0001", "complaint", "service_center", "客服乙", "H2")  # fmt: skip
    assert (repair.number, repair.ticket_type, team2, owner2, home2) == (
        f"WX{day}-0001", "repair", "engineering", "技术员", "H3")  # fmt: skip
    assert apology.summary == "客户最近一次满意度评分 1 分。\n协调方案“上门致歉”：先上门当面致歉"
    assert "漏水影响生活，当天修复" in repair.summary
    assert apology.status == "accepted"
    # The SLA of a general complaint: resolved within 30 minutes.
    assert apology.resolve_due_at == apology.opened_at + dt.timedelta(minutes=30)
    assert [(o.number, o.kind, o.status, o.due_at) for o in orders] == [
        (f"TS{day}-0001-01", "remedial", "open", apology.resolve_due_at),
        (f"WX{day}-0001-01", "remedial", "open", repair.resolve_due_at),
    ]
    assert orders[0].assignee_id == apology.owner_id
    assert orders[0].description == "上门致歉：先上门当面致歉（预计成本 300 元）"
    assert [a for t, a in events if t == apology.id] == ["open", "assign", "dispatch"]
    assert [r.status for r in records] == ["handed", "handed"]

    logged = decisions(app)
    assert [(d.feedback_id, d.status, d.plan, d.team, d.work_refs) for d in logged] == [
        (str(first), "dispatched", "上门致歉", "service_center",
         [f"TS{day}-0001", f"TS{day}-0001-01"]),
        (str(second), "dispatched", "优先维修", "engineering",
         [f"WX{day}-0001", f"WX{day}-0001-01"]),
    ]  # fmt: skip
    assert [o["name"] for o in logged[0].options] == ["上门致歉", "优先维修"]
    assert logged[0].chosen["expected_value"] == 900.0
    assert logged[0].dispatched_at == NOW and logged[0].household_code == "H2"

    again = cycle(app)
    assert (again.collected, again.dispatched) == (0, 0)
    assert len(new_tickets(app)) == 2


def test_work_is_spread_over_the_least_loaded_front_line_people(app, homes, assessor):
    add_feedback(app, homes, *[(f"H{i}", "服务态度差。", 0.9 - i / 100) for i in range(1, 5)])
    cycle(app)
    with app.session() as session:
        owners = session.scalars(
            select(Staff.name)
            .join(Ticket, Ticket.owner_id == Staff.id)
            .where(Ticket.number.like("TS%"))
            .order_by(Ticket.number)
        ).all()
    # 客服甲 starts with one open ticket; each dispatch adds a ticket and a work order (2).
    assert owners == ["客服乙", "客服甲", "客服乙", "客服甲"]


def test_the_batch_path_writes_what_the_one_by_one_library_path_writes(app, homes):
    from crm.plugins.service.dispatch import create_work_order, get_team, least_loaded
    from crm.plugins.service.plans import carry_out_plans, summary_of, work_description
    from crm.plugins.service.tickets import open_ticket, record_event

    feedback = Feedback("77", "H2", "维修后仍然漏水。", 0.8, "satisfaction.satisfaction_drop")
    plan = Plan("优先维修", 800.0, 1500.0, "当天修复", team="technical", ticket_type="repair")

    def snapshot(session) -> dict:
        ticket = session.scalar(select(Ticket).where(Ticket.number.like("WX%")))
        skip = {"id", "created_at", "updated_at", "version"}
        return {
            "ticket": {k: v for k, v in vars(ticket).items() if not k.startswith("_") and k not in skip},
            "events": session.execute(
                select(TicketEvent.at, TicketEvent.actor, TicketEvent.action,
                       TicketEvent.from_status, TicketEvent.to_status, TicketEvent.note)
                .where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
            ).all(),
            "orders": session.execute(
                select(WorkOrder.number, WorkOrder.kind, WorkOrder.description,
                       WorkOrder.team_id, WorkOrder.assignee_id, WorkOrder.status,
                       WorkOrder.due_at, WorkOrder.parent_id)
                .where(WorkOrder.ticket_id == ticket.id)
            ).all(),
        }  # fmt: skip

    with app.session() as session:
        [done] = carry_out_plans(session, [(feedback, plan)], now=NOW)
        batch = snapshot(session)
        session.rollback()
    with app.session() as session:
        ticket = open_ticket(session, "H2", "repair", "phone", summary_of(feedback, plan), now=NOW)
        team = get_team(session, "engineering")
        staff = least_loaded(session, team)
        ticket.team_id, ticket.owner_id = team.id, staff.id
        record_event(session, ticket, "assign", f"派给 {team.name}：{staff.name}", NOW)
        session.flush()
        create_work_order(session, ticket, "remedial", work_description(plan),
                          due_at=ticket.resolve_due_at, team_code=team.code,
                          assignee_name=staff.name, now=NOW)  # fmt: skip
        session.flush()
        session.expire_all()
        one_by_one = snapshot(session)
        session.rollback()
    assert batch == one_by_one
    assert done.references == [batch["orders"][0][0][:-3], batch["orders"][0][0]]
    assert done.team == "engineering" and done.plan == "优先维修"


def test_feedback_without_a_plan_or_a_household_is_recorded_not_lost(app, homes):
    app.pm.register(Assessor(skip={"H4"}), name="skipping-assessor")
    add_feedback(app, homes, ("H4", "不满意。", 0.5), (None, "项目满意率下滑。", 0.9))
    report = cycle(app)
    assert (report.collected, report.no_plan, report.undispatched) == (2, 1, 1)
    by_home = {d.household_code: d for d in decisions(app)}
    assert by_home["H4"].status == "no_plan" and "未给出方案" in by_home["H4"].note
    assert by_home[None].status == "undispatched" and by_home[None].project == "城市花园"
    assert by_home[None].plan == "上门致歉" and new_tickets(app) == []


def test_a_crash_while_dispatching_is_resumed_and_nothing_is_dispatched_twice(app, homes, assessor):
    app.pm.register(Crashing(), name="crashing-dispatch")
    add_feedback(app, homes, *[(f"H{i}", "不满意。", 0.5) for i in (2, 3, 4)])
    with pytest.raises(RuntimeError, match="派工时进程崩溃"):
        cycle(app)
    # Collected and assessed were committed; the dispatch rolled back with its tickets.
    assert statuses(app) == ["assessed"] * 3 and new_tickets(app) == []
    assert count(app, WorkOrder) == 0
    report = cycle(app)
    assert (report.collected, report.assessed, report.dispatched) == (0, 0, 3)
    assert statuses(app) == ["dispatched"] * 3
    assert sorted(t.household_id for t in new_tickets(app)) == sorted(
        homes[c] for c in ("H2", "H3", "H4")
    )
    assert cycle(app).dispatched == 0 and len(new_tickets(app)) == 3
    assert count(app, WorkOrder) == 3


def test_a_crash_while_assessing_is_resumed_from_the_collected_decisions(app, homes):
    flaky = Assessor(fail=True)
    app.pm.register(flaky, name="flaky-assessor")
    ids = add_feedback(app, homes, ("H2", "不满意。", 0.5), ("H3", "不满意。", 0.4))
    with pytest.raises(RuntimeError, match="评估服务中途崩溃"):
        cycle(app)
    assert statuses(app) == ["collected", "collected"]
    with app.session() as session:
        assert set(session.scalars(select(FeedbackRecord.status))) == {"handed"}
    report = cycle(app)
    assert (report.collected, report.assessed, report.dispatched) == (0, 2, 2)
    assert sorted(flaky.seen) == sorted(str(i) for i in ids)


def test_two_cycles_at_once_dispatch_every_feedback_exactly_once(app, homes, db_url, monkeypatch):
    ids = add_feedback(
        app, homes, *[(f"H{1 + i % 6}", f"第 {i} 条反馈。", 0.2 + (i % 7) / 10) for i in range(90)]
    )
    apps = [make_app(db_url, monkeypatch, Assessor()) for _ in range(2)]
    barrier = threading.Barrier(2)
    reports, errors = [], []

    def work(instance: App) -> None:
        try:
            with instance.session() as session:
                barrier.wait()
                reports.append(run_cycle(session, batch=7, now=NOW))
        except Exception as exc:  # noqa: BLE001  reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(instance,)) for instance in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for instance in apps:
        instance.dispose()
    assert errors == []
    assert sum(r.collected for r in reports) == 90
    assert sum(r.dispatched for r in reports) == 90
    logged = decisions(app)
    assert sorted(int(d.feedback_id) for d in logged) == sorted(ids)
    assert {d.status for d in logged} == {"dispatched"}
    tickets = {t.number: t for t in new_tickets(app)}
    assert len(tickets) == 90 and count(app, WorkOrder) == 90
    with app.session() as session:
        homes_by_id = dict(session.execute(select(Household.id, Household.code)).all())
    for decision in logged:
        ticket = tickets[decision.work_refs[0]]
        assert homes_by_id[ticket.household_id] == decision.household_code


class Gate:
    """In front of service handling: the first batch to reach dispatch waits there, its
    transaction open, while the other cycle has its chance at the same decisions."""

    def __init__(self, inside: threading.Event):
        self.inside = inside
        self.handed: list[str] = []

    @hookimpl
    def carry_out_plans(self, session, decisions):
        self.handed += [feedback.id for feedback, _ in decisions]
        if not self.inside.is_set():
            self.inside.set()
            time.sleep(0.3)
        # No answer: service handling, next in line, carries the plans out.


def test_a_cycle_started_while_another_dispatches_does_not_take_the_same_decisions(
    app, homes, db_url, monkeypatch
):
    ids = add_feedback(app, homes, *[(f"H{i}", "不满意。", 0.5) for i in range(1, 7)])
    inside = threading.Event()
    gates = [Gate(inside), Gate(inside)]
    apps = [make_app(db_url, monkeypatch, Assessor(), gate) for gate in gates]
    reports, errors = [None, None], []

    def work(n: int) -> None:
        try:
            if n == 1:
                assert inside.wait(timeout=30)
            with apps[n].session() as session:
                reports[n] = run_cycle(session, now=NOW)
        except Exception as exc:  # noqa: BLE001  reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for instance in apps:
        instance.dispose()
    assert errors == []
    # The second cycle found the first one's decisions claimed, and then dispatched.
    assert (reports[0].dispatched, reports[1].dispatched) == (6, 0)
    assert sorted(gates[0].handed + gates[1].handed) == sorted(str(i) for i in ids)
    assert len(new_tickets(app)) == 6 and statuses(app) == ["dispatched"] * 6


def test_a_disabled_step_is_named_before_any_feedback_is_collected(app, homes, db_url, monkeypatch):
    add_feedback(app, homes, ("H2", "不满意。", 0.5))
    for disable, plugins, step in (
        ("profitability", (), "缺少“盈利能力评估”（assess_feedback）"),
        ("profitability,service", (Assessor(),), "缺少“服务处理执行”（carry_out_plans）"),
        ("satisfaction", (Assessor(),), "缺少“满意度监测反馈”（collect_feedback）"),
    ):
        lacking = make_app(db_url, monkeypatch, *plugins, disable=disable)
        with lacking.session() as session, pytest.raises(MissingStep, match=step) as raised:
            run_cycle(session, now=NOW)
        assert "CRM_DISABLE_PLUGINS" in str(raised.value)
        lacking.dispose()
    assert decisions(app) == []
    with app.session() as session:
        assert session.scalars(select(FeedbackRecord.status)).all() == ["pending"]


class Silent:
    @hookimpl
    def assess_feedback(self, session, feedback):
        return None


def test_a_step_that_gives_no_answer_keeps_the_feedback_for_the_next_cycle(
    app, homes, db_url, monkeypatch
):
    add_feedback(app, homes, ("H2", "不满意。", 0.5))
    silent = make_app(db_url, monkeypatch, Silent())
    with silent.session() as session, pytest.raises(MissingStep, match="没有给出评估"):
        run_cycle(session, now=NOW)
    silent.dispose()
    assert statuses(app) == ["collected"]
    app.pm.register(Assessor(), name="late-assessor")
    assert cycle(app).dispatched == 1 and statuses(app) == ["dispatched"]


def test_the_outcome_is_recorded_when_the_dispatched_work_closes(app, homes, assessor):
    from crm.plugins.service.dispatch import complete_work_order

    add_feedback(app, homes, ("H2", "不满意。", 0.9), ("H3", "不满意。", 0.8))
    cycle(app)
    first, second = decisions(app)
    later = NOW + dt.timedelta(hours=3)
    with app.session() as session, transaction(session):
        complete_work_order(session, first.work_refs[1], "已上门致歉，客户接受", now=later)
        complete_work_order(session, second.work_refs[1], "已上门致歉", now=later)
        ticket = session.scalar(select(Ticket).where(Ticket.number == first.work_refs[0]))
        ticket.status, ticket.closed_at = "closed", later
    with app.session() as session:
        report = run_cycle(session, now=later)
    assert report.closed == 1
    first, second = decisions(app)
    assert (first.status, first.closed_at) == ("closed", later)
    assert first.outcome == {first.work_refs[0]: "closed", first.work_refs[1]: "closed"}
    assert second.status == "dispatched" and second.outcome_at == later
    assert second.outcome == {second.work_refs[0]: "open", second.work_refs[1]: "closed"}


def test_the_decision_log_filters_by_status_household_plan_and_date(app, homes, assessor):
    add_feedback(app, homes, ("H2", "不满意。", 0.9), ("H3", "楼上漏水。", 0.5))
    cycle(app)
    with app.session() as session:
        every = list_decisions(session)
        by_plan = list_decisions(session, plan="优先维修")
        by_home = list_decisions(session, household="H2", status="已派工")
        none_yet = list_decisions(session, status="closed")
        before = list_decisions(session, until=NOW - dt.timedelta(days=1))
        since = list_decisions(session, since=NOW - dt.timedelta(hours=1))
    assert [row["household"] for row in every] == ["H3", "H2"]  # newest first
    assert [row["household"] for row in by_plan] == ["H3"]
    assert [row["plan"] for row in by_home] == ["上门致歉"]
    assert by_home[0]["status"] == "已派工" and by_home[0]["work"][0].endswith("-0001")
    assert none_yet == [] and before == [] and len(since) == 2


# --- the commands -----------------------------------------------------------------------------


@pytest.fixture
def cli_assessor():
    """The stand-in assessment on the plugin manager the CLI uses."""
    from crm.cli import plugin_manager

    plugin = Assessor()
    plugin_manager().register(plugin, name="test-cli-assessor")
    yield plugin
    plugin_manager().unregister(plugin)


def test_run_prints_the_counts_and_log_lists_the_decisions(run, app, homes, cli_assessor):
    add_feedback(app, homes, ("H2", "不满意。", 0.9), ("H3", "楼上漏水。", 0.5))
    result = run("coordinate", "run", "--format", "json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert (counts["collected"], counts["dispatched"], counts["closed"]) == (2, 2, 0)
    table = run("coordinate", "run")
    assert table.exit_code == 0 and "收集反馈" in table.stdout and "已派工" in table.stdout

    logged = run("coordinate", "log", "--format", "json", "--plan", "优先维修")
    assert logged.exit_code == 0, logged.output
    [row] = json.loads(logged.stdout)
    assert row["household"] == "H3" and row["team"] == "engineering"
    assert [o["name"] for o in row["options"]] == ["上门致歉", "优先维修"]
    assert row["work"][0].startswith("WX") and row["status"] == "已派工"
    listed = run("coordinate", "log", "--status", "dispatched", "--since", "2000-01-01")
    assert (
        listed.exit_code == 0 and "选定方案" in listed.stdout and "上门致歉（900）" in listed.stdout
    )
    csv = run("coordinate", "log", "--format", "csv", "--household", "H2")
    assert csv.stdout.splitlines()[0].startswith("id,feedback,household")
    assert len(csv.stdout.splitlines()) == 2
    bad = run("coordinate", "log", "--status", "lost")
    assert bad.exit_code != 0 and "不认识的决策状态" in bad.output and "Traceback" not in bad.output
    refused = run("coordinate", "run", as_="分析员:analyst")
    assert refused.exit_code != 0 and "无权运行协调调度" in refused.output


def test_run_names_the_missing_step(run, app, homes, monkeypatch):
    import crm.cli

    add_feedback(app, homes, ("H2", "不满意。", 0.9))
    monkeypatch.setenv("CRM_DISABLE_PLUGINS", "profitability")
    monkeypatch.setattr(crm.cli, "_PM", make_plugin_manager(BUILTIN_PLUGINS))
    monkeypatch.delenv("CRM_DISABLE_PLUGINS")
    result = run("coordinate", "run")
    assert result.exit_code == 1
    assert "缺少“盈利能力评估”" in result.stderr and "Traceback" not in result.output
    with app.session() as session:
        assert session.scalars(select(FeedbackRecord.status)).all() == ["pending"]


def test_watch_repeats_on_the_interval_until_max_runs(run, app, homes, cli_assessor):
    add_feedback(app, homes, ("H2", "不满意。", 0.9))
    result = run("coordinate", "watch", "--interval", "0.05", "--max-runs", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split("：")[0] for line in lines] == ["第 1 轮", "第 2 轮", "第 3 轮"]
    assert "派工 1 条" in lines[0] and "派工 0 条" in lines[1]
    assert "共运行 3 轮" in result.stderr
    as_json = run(
        "coordinate", "watch", "--interval", "0.05", "--max-runs", "1", "--format", "json"
    )
    assert json.loads(as_json.stdout.splitlines()[0])["run"] == 1


def test_watch_stops_cleanly_on_ctrl_c(run, app, cli_assessor, monkeypatch):
    from apscheduler.schedulers.blocking import BlockingScheduler

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(BlockingScheduler, "start", interrupted)
    result = run("coordinate", "watch", "--interval", "1")
    assert result.exit_code == 0, result.output
    assert "协调值守已停止，共运行 0 轮" in result.stderr


def test_a_failed_run_of_the_watch_is_resumed_by_the_next(run, app, homes):
    from crm.cli import plugin_manager

    flaky = Assessor(fail=True)
    plugin_manager().register(flaky, name="test-flaky-assessor")
    try:
        add_feedback(app, homes, ("H2", "不满意。", 0.9))
        result = run("coordinate", "watch", "--interval", "0.05", "--max-runs", "2")
    finally:
        plugin_manager().unregister(flaky)
    assert result.exit_code == 0, result.output
    [failed] = [line for line in result.stderr.splitlines() if line.startswith("第 1 轮")]
    assert failed == "第 1 轮出错：评估服务中途崩溃；未完成的决策将在下一轮继续。"
    assert "派工 1 条" in result.stdout and statuses(app) == ["dispatched"]
