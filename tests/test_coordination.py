"""Coordination: the cycle collects pending feedback, has it assessed and the chosen plans carried
out by service handling as tasks for staff (never as tickets in the customer's name), each
feedback exactly once (across crashes and concurrent cycles), and records every decision with
the customer's answer once the work is done; a missing step stops the cycle before anything is
collected.

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
from crm.core.errors import CrmError
from crm.core.models import Household, Project, ServiceRecord
from crm.core.plugins import make_plugin_manager
from crm.core.security import User
from crm.plugins import BUILTIN_PLUGINS
from crm.plugins.coordination.cycle import MissingStep, list_decisions, run_cycle
from crm.plugins.coordination.models import Decision
from crm.plugins.satisfaction.models import FeedbackRecord
from crm.plugins.service.models import ProjectManager, Staff, Team, Ticket, WorkOrder

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
    def assess_feedback(self, session, feedback: list[Feedback], now) -> list[Assessment]:
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
                task="apology_visit",
                retention_gain=0.1,
            )
            repair = Plan("优先维修", 800.0, 2000 if "漏水" in item.reason else 100,
                          "漏水影响生活，当天修复", team="technical", task="priority_repair")  # fmt: skip
            best = max((apology, repair), key=lambda plan: plan.expected_value)
            answers.append(Assessment(item.id, [apology, repair], best))
        return answers


class Crashing:
    """In front of service handling: raises on the first call, then lets service answer."""

    def __init__(self):
        self.calls = 0

    @hookimpl
    def carry_out_plans(self, session, instructions):
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
    """A project with households H1..H6 and its manager, and front-line staff: two in
    customer service (one already busy with an open ticket), one technician."""
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
                Staff(name="项目经理", team_id=centre.id, title="项目经理", level=3),
            ]
        )
        session.flush()
        manager = session.scalar(select(Staff.id).where(Staff.name == "项目经理"))
        session.add(ProjectManager(project_id=project.id, staff_id=manager))
        session.flush()
        session.add(
            Ticket(number="ZX20260401-0001", ticket_type="enquiry", channel="phone",
                   household_id=people[0].id, summary="咨询", status="accepted",
                   opened_at=NOW - dt.timedelta(days=1), owner_id=busy.id)
        )  # fmt: skip
        return {"project": project.id} | {h.code: h.id for h in people}


def add_feedback(app, homes, *specs) -> list[int]:
    """specs: (household code, or None for the project, or "-" for neither; reason,
    strength)."""
    with app.session() as session, transaction(session):
        records = [
            FeedbackRecord(
                key=f"test:{i}:{code}:{reason}",
                kind="satisfaction_drop" if code else "project_drop",
                household_id=homes[code] if code and code != "-" else None,
                project_id=homes["project"] if code is None else None,
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


def tasks(app) -> list[WorkOrder]:
    with app.session() as session:
        return session.scalars(
            select(WorkOrder).where(WorkOrder.ticket_id.is_(None)).order_by(WorkOrder.id)
        ).all()


def statuses(app) -> list[str]:
    return [d.status for d in decisions(app)]


def test_a_cycle_gives_each_plan_to_its_team_as_a_task_not_a_ticket(app, homes, assessor):
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
            select(WorkOrder, Team.code, Staff.name, Household.code)
            .join(Team, WorkOrder.team_id == Team.id)
            .join(Staff, WorkOrder.assignee_id == Staff.id)
            .join(Household, WorkOrder.household_id == Household.id)
            .order_by(WorkOrder.id)
        ).all()
        records = session.scalars(select(FeedbackRecord).order_by(FeedbackRecord.id)).all()
        register = session.scalar(select(func.count()).select_from(ServiceRecord))
    # No ticket in the customer's name, no entry in the service register: the work the system
    # makes for itself is never a customer's complaint.
    assert new_tickets(app) == [] and register == 0
    # Strongest first; the apology goes to customer service (客服乙: 客服甲 already has work),
    # the leak to the technical team.
    (apology, team1, owner1, home1), (repair, team2, owner2, home2) = rows
    day = f"{to_local(NOW):%Y%m%d}"
    assert (apology.number, apology.kind, team1, owner1, home1) == (
        f"RW{day}-0001", "apology_visit", "service_center", "客服乙", "H2")  # fmt: skip
    assert (repair.number, repair.kind, team2, owner2, home2) == (
        f"RW{day}-0002", "priority_repair", "engineering", "技术员", "H3")  # fmt: skip
    assert apology.ticket_id is None and apology.origin == "coordination"
    assert apology.status == "open" and apology.created_at == NOW
    # Linked to the feedback and the decision that caused it.
    logged = decisions(app)
    assert (apology.feedback_ref, apology.decision_ref) == (str(first), str(logged[0].id))
    assert (
        "先上门当面致歉" in apology.description
        and "客户最近一次满意度评分 1 分" in apology.description
    )
    # Due in business hours: 10:00 plus a working day (570 minutes of 08:30-18:00) is 10:00
    # the next day.
    assert apology.due_at == repair.due_at == NOW + dt.timedelta(days=1)
    assert [r.status for r in records] == ["handed", "handed"]

    assert [(d.feedback_id, d.status, d.plan, d.team, d.work_refs) for d in logged] == [
        (str(first), "dispatched", "上门致歉", "service_center", [f"RW{day}-0001"]),
        (str(second), "dispatched", "优先维修", "engineering", [f"RW{day}-0002"]),
    ]
    assert [o["name"] for o in logged[0].options] == ["上门致歉", "优先维修"]
    assert logged[0].chosen["expected_value"] == 900.0
    assert logged[0].dispatched_at == NOW and logged[0].household_code == "H2"
    assert logged[0].household_id == homes["H2"]

    again = cycle(app)
    assert (again.collected, again.dispatched) == (0, 0)
    assert len(tasks(app)) == 2


def test_work_is_spread_over_the_least_loaded_front_line_people(app, homes, assessor):
    add_feedback(app, homes, *[(f"H{i}", "服务态度差。", 0.9 - i / 100) for i in range(1, 5)])
    cycle(app)
    with app.session() as session:
        owners = session.scalars(
            select(Staff.name)
            .join(WorkOrder, WorkOrder.assignee_id == Staff.id)
            .where(WorkOrder.number.like("RW%"))
            .order_by(WorkOrder.number)
        ).all()
    # 客服甲 starts with one open ticket; each task adds one; ties go by name (乙 before 甲).
    assert owners == ["客服乙", "客服乙", "客服甲", "客服乙"]


def test_tasks_never_count_as_complaints_warnings_or_campaign_exclusions(app, homes, assessor):
    from crm.plugins.campaigns.campaigns import open_complaint_households
    from crm.plugins.satisfaction.warnings import detect_warnings
    from crm.plugins.service.classification import complaint_counts

    add_feedback(app, homes, *[(f"H{i}", "再次投诉。", 0.9) for i in (2, 3)])
    for round_ in range(3):  # cycle after cycle: the system does not feed itself
        at = NOW + dt.timedelta(days=round_)
        with app.session() as session, transaction(session):
            new = detect_warnings(session, now=at)
        if round_:
            assert new == []
        with app.session() as session:
            run_cycle(session, now=at)
    with app.session() as session:
        assert open_complaint_households(session) == set()
        assert (
            complaint_counts(session, NOW - dt.timedelta(days=30), NOW + dt.timedelta(days=5)) == []
        )
        assert session.scalar(select(func.count()).select_from(FeedbackRecord)) == 2
    assert new_tickets(app) == [] and len(tasks(app)) == 2


def test_feedback_of_a_project_goes_to_its_manager_and_none_is_recorded_not_lost(app, homes):
    app.pm.register(Assessor(skip={"H4"}), name="skipping-assessor")
    add_feedback(
        app,
        homes,
        ("H4", "不满意。", 0.5),
        (None, "项目满意率下滑。", 0.9),
        ("-", "来源不明的反馈。", 0.4),
    )
    report = cycle(app)
    assert (report.collected, report.no_plan, report.dispatched, report.undispatched) == (
        3, 1, 1, 1)  # fmt: skip
    by_reason = {d.reason: d for d in decisions(app)}
    assert by_reason["不满意。"].status == "no_plan" and "未给出方案" in by_reason["不满意。"].note
    project = by_reason["项目满意率下滑。"]
    assert project.status == "dispatched" and project.project == "城市花园"
    [improvement] = tasks(app)
    assert improvement.kind == "improvement" and improvement.household_id is None
    with app.session() as session:
        manager = session.get(Staff, improvement.assignee_id).name
    assert improvement.project_id == homes["project"] and manager == "项目经理"
    assert improvement.due_at > NOW
    assert by_reason["来源不明的反馈。"].status == "undispatched"
    assert new_tickets(app) == []


def test_a_crash_while_dispatching_is_resumed_and_nothing_is_dispatched_twice(app, homes, assessor):
    app.pm.register(Crashing(), name="crashing-dispatch")
    add_feedback(app, homes, *[(f"H{i}", "不满意。", 0.5) for i in (2, 3, 4)])
    with pytest.raises(RuntimeError, match="派工时进程崩溃"):
        cycle(app)
    # Collected and assessed were committed; the dispatch rolled back with its tasks.
    assert statuses(app) == ["assessed"] * 3 and tasks(app) == []
    report = cycle(app)
    assert (report.collected, report.assessed, report.dispatched) == (0, 0, 3)
    assert statuses(app) == ["dispatched"] * 3
    assert sorted(t.household_id for t in tasks(app)) == sorted(
        homes[c] for c in ("H2", "H3", "H4")
    )
    assert cycle(app).dispatched == 0 and len(tasks(app)) == 3


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
    # One task per household: the household's later warnings join its open task.
    given = {t.number: t for t in tasks(app)}
    assert len(given) == 6 and count(app, WorkOrder) == 6
    with app.session() as session:
        homes_by_id = dict(session.execute(select(Household.id, Household.code)).all())
    for decision in logged:
        task = given[decision.work_refs[0]]
        assert homes_by_id[task.household_id] == decision.household_code


class Gate:
    """In front of service handling: the first batch to reach dispatch waits there, its
    transaction open, while the other cycle has its chance at the same decisions."""

    def __init__(self, inside: threading.Event):
        self.inside = inside
        self.handed: list[str] = []

    @hookimpl
    def carry_out_plans(self, session, instructions):
        self.handed += [instruction.feedback.id for instruction in instructions]
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
    assert len(tasks(app)) == 6 and statuses(app) == ["dispatched"] * 6


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
    def assess_feedback(self, session, feedback, now):
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


def test_the_customers_answer_flows_back_to_the_decision_log(app, homes, assessor):
    from crm.plugins.service.tasks import complete_task

    add_feedback(app, homes, ("H2", "不满意。", 0.9), ("H3", "不满意。", 0.8))
    cycle(app)
    first, second = decisions(app)
    later = NOW + dt.timedelta(hours=3)
    with app.session() as session, transaction(session):
        with pytest.raises(CrmError, match="客户的答复"):
            complete_task(session, first.work_refs[0], None, None, now=later)
        complete_task(session, first.work_refs[0], "接受道歉，问题已解决", True, now=later)
    with app.session() as session:
        report = run_cycle(session, now=later)
    assert report.closed == 1
    first, second = decisions(app)
    assert (first.status, first.closed_at) == ("closed", later)
    assert (first.answer, first.accepted) == ("接受道歉，问题已解决", True)
    assert first.outcome[first.work_refs[0]]["status"] == "closed"
    assert second.status == "dispatched" and second.outcome_at == later
    assert second.outcome == {
        second.work_refs[0]: {"status": "open", "answer": None, "accepted": None, "done_at": None}
    }
    # Typed in the next morning, done the evening before: the log keeps when it was done.
    evening, morning = later + dt.timedelta(hours=5), later + dt.timedelta(hours=20)
    with app.session() as session, transaction(session):
        done = complete_task(
            session, second.work_refs[0], "仍不满意，要求赔偿", False, now=morning, at=evening
        )
        assert (done.completed_at, done.completion_entered_at) == (evening, morning)
    with app.session() as session:
        run_cycle(session, now=morning)
    second = decisions(app)[1]
    assert (second.status, second.accepted, second.answer) == (
        "closed",
        False,
        "仍不满意，要求赔偿",
    )


def test_the_decision_log_filters_by_status_household_plan_and_date(app, homes, assessor):
    add_feedback(app, homes, ("H2", "不满意。", 0.9), ("H3", "楼上漏水。", 0.5))
    cycle(app)
    with app.session() as session:
        every = list_decisions(session)
        by_plan = list_decisions(session, plan="优先维修")
        by_home = list_decisions(session, household="H2", status="已派工")  # code or label
        none_yet = list_decisions(session, status="closed")
        before = list_decisions(session, until=NOW - dt.timedelta(days=1))
        since = list_decisions(session, since=NOW - dt.timedelta(hours=1))
    assert [row["household"] for row in every] == ["H3", "H2"]  # newest first
    assert [row["household"] for row in by_plan] == ["H3"]
    assert [row["plan"] for row in by_home] == ["上门致歉"]
    assert by_home[0]["status"] == "dispatched" and by_home[0]["work"][0].endswith("-0001")
    assert none_yet == [] and before == [] and len(since) == 2


def test_the_log_reads_an_outcome_logged_as_a_status_alone_as_the_others(app, homes, assessor, run):
    add_feedback(app, homes, ("H2", "不满意。", 0.9))
    cycle(app)
    with app.session() as session, transaction(session):
        decision = session.scalars(select(Decision)).one()
        # as decisions logged before outcomes carried the customer's answer hold it
        decision.outcome = {decision.work_refs[0]: "closed"}
        ref = decision.work_refs[0]
    with app.session() as session:
        [row] = list_decisions(session)
    assert row["outcome"] == {ref: {"status": "closed"}}
    logged = run("coordinate", "log", "--format", "json")
    assert logged.exit_code == 0, logged.output
    [row] = json.loads(logged.stdout)
    assert row["outcome"] == {ref: {"status": "closed", "status_label": "已完成"}}
    table = run("coordinate", "log")
    assert f"{ref} 已完成" in table.stdout


# --- the commands -----------------------------------------------------------------------------


@pytest.fixture
def cli_assessor():
    """The stand-in assessment on the plugin manager the CLI uses."""
    from crm.cli import plugin_manager

    plugin = Assessor()
    plugin_manager().register(plugin, name="test-cli-assessor")
    yield plugin
    plugin_manager().unregister(plugin)


def test_run_prints_the_counts_and_log_lists_the_decisions(
    run, app, homes, cli_assessor, monkeypatch
):
    # Every column of the log (a 120-column terminal leaves the options out).
    monkeypatch.setenv("COLUMNS", "1000")
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
    assert row["work"][0].startswith("RW") and row["status"] == "dispatched"
    # JSON keeps the codes, each with its label beside it, in the options too
    assert row["status_label"] == "已派工"
    assert [(o["task_label"], o["team_label"]) for o in row["options"]] == [
        ("上门致歉", "客服"),
        ("优先维修", "技术"),
    ]
    listed = run("coordinate", "log", "--status", "dispatched", "--since", "2000-01-01")
    assert (
        listed.exit_code == 0 and "选定方案" in listed.stdout and "上门致歉（900）" in listed.stdout
    )
    assert "已派工" in listed.stdout  # the status in Chinese in the table
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


def test_a_household_is_followed_up_by_one_task_at_a_time(app, homes, assessor):
    """Warnings about one household that arrive together, or while its task is open, join
    that task instead of contacting the customer again."""
    from crm.plugins.service.tasks import complete_task

    add_feedback(app, homes, ("H2", "满意度下降。", 0.9), ("H2", "重复投诉。", 0.5))
    cycle(app)
    [task] = tasks(app)
    first, second = decisions(app)
    assert first.work_refs == second.work_refs == [task.number]
    assert "重复投诉" in task.description and "并入本任务" in task.description
    later = NOW + dt.timedelta(hours=2)
    add_feedback(app, homes, ("H2", "又一次满意度下降。", 0.7))
    with app.session() as session:
        run_cycle(session, now=later)
    assert len(tasks(app)) == 1 and decisions(app)[2].work_refs == [task.number]
    with app.session() as session, transaction(session):
        complete_task(session, task.number, "客户接受", True, now=later + dt.timedelta(hours=1))
    with app.session() as session:
        run_cycle(session, now=later + dt.timedelta(hours=2))
    assert {d.status for d in decisions(app)} == {"closed"}
    # Once the task is done, a new warning gets a task of its own.
    add_feedback(app, homes, ("H2", "再次投诉。", 0.6))
    with app.session() as session:
        run_cycle(session, now=later + dt.timedelta(days=1))
    assert len(tasks(app)) == 2
