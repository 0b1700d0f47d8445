"""Tasks (任务): work the system gives to staff that no customer asked for, above all the plans
coordination decided (协调派工): a follow-up call, an apology visit, a priority repair, a gift,
compensation, a manager's supervision, a project's improvement.

A task is a work order without a ticket, under its own number (RW20261202-0001), with its
origin (coordination), the household or project it is for, and the feedback record and
decision it carries out. It is never a customer's request: it opens no ticket, runs no SLA
clock, and never counts as a complaint, a contact, a hot spot, a warning or a reason to leave a
household out of a campaign. Its due time counts business hours (rules.TASK_KINDS). It goes to
the least-loaded front-line person of the plan's team, or, for supervision and improvement, to
the manager responsible for the project (ProjectManager), else to the team's or the customer
service centre's manager. A household (or project) is followed up by one task at a time: a
plan for a household that already has an open task joins that task (its cause is added to
what the task says), so nobody is contacted twice for warnings that arrive together. When
done, the task records what the customer answered and whether they accepted it;
dispatch_outcomes hands that back to every decision the task carries out.

Written set-based, so a batch of hundreds costs a few statements.
"""

from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from crm.core.audit import current_user, record
from crm.core.chain import Dispatch, Instruction, WorkOutcome
from crm.core.clock import when_done
from crm.core.errors import CrmError
from crm.core.models import Household, Project, utcnow
from crm.plugins.service import sla
from crm.plugins.service.dispatch import get_work_order, open_load
from crm.plugins.service.models import ProjectManager, Staff, Team, WorkOrder
from crm.plugins.service.repairs import amount_of
from crm.plugins.service.rules import (
    MANAGER,
    MANAGER_TASKS,
    TASK_KINDS,
    TASK_PREFIX,
    WORK_ORDER_STATUS,
    number,
    number_head,
)
from crm.plugins.service.tickets import NUMBER_LOCK, last_sequence

ORIGIN = "coordination"
NO_STAFF = "（团队暂无人员，待指派）"
# Work order status -> what coordination's decision log is told.
WORK_OUTCOMES = {"open": "open", "done": "closed", "cancelled": "cancelled", "returned": "returned"}
# What a done task cost the company, by kind (read as the cost to serve the household).
COST_KINDS = {"compensation": "compensation", "gift": "gift", "priority_repair": "repair"}
CHUNK = 500


@dataclass
class _Job:
    instruction: Instruction
    household_id: int | None
    project_id: int | None
    kind: str
    team: Team


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _team_for_plan(teams: list[Team], wanted: str | None) -> Team | None:
    """The team named by code, else the first of that kind (vendors last), else the customer
    service centre, which follows every request."""
    for match in (
        lambda t: t.code == wanted,
        lambda t: t.kind == wanted,
        lambda t: t.kind == "customer_service",
    ):
        found = next((team for team in teams if match(team)), None)
        if found is not None:
            return found
    return None


def _front_line(session: Session, team_ids: set[int]) -> dict[int, list[tuple[int, str, int]]]:
    """Per team, a heap of (open load, name, staff id) of its active front-line people: the
    order dispatch.least_loaded picks them in."""
    heaps: dict[int, list[tuple[int, str, int]]] = {team_id: [] for team_id in team_ids}
    rows = session.execute(
        select(Staff.team_id, open_load(), Staff.name, Staff.id).where(
            Staff.team_id.in_(team_ids), Staff.level == 1, Staff.active.is_(True)
        )
    )
    for team_id, load, name, staff_id in rows:
        heaps[team_id].append((load, name, staff_id))
    for heap in heaps.values():
        heapq.heapify(heap)
    return heaps


def _managers(session: Session, project_ids: set[int]) -> dict[int | None, tuple[int, str]]:
    """Project id -> (staff id, name) of its responsible manager; None -> the manager who
    stands in for projects without one (the customer service centre's, else any)."""
    found: dict[int | None, tuple[int, str]] = {}
    if project_ids:
        for project_id, staff_id, name in session.execute(
            select(ProjectManager.project_id, Staff.id, Staff.name)
            .join(Staff, Staff.id == ProjectManager.staff_id)
            .where(ProjectManager.project_id.in_(project_ids), Staff.active.is_(True))
        ):
            found[project_id] = (staff_id, name)
    fallback = session.execute(
        select(Staff.id, Staff.name)
        .outerjoin(Team, Team.id == Staff.team_id)
        .where(Staff.level >= MANAGER, Staff.active.is_(True))
        .order_by(Staff.level, (Team.kind == "customer_service").desc(), Staff.id)
        .limit(1)
    ).first()
    if fallback is not None:
        found[None] = (fallback.id, fallback.name)
    return found


def _lock(session: Session) -> None:
    """The transaction-wide lock open_ticket also takes for its numbers (PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(NUMBER_LOCK)))


def task_numbers(session: Session, count: int, now: dt.datetime) -> list[str]:
    """`count` consecutive task numbers of the day, drawn under the lock open_ticket uses (on
    SQLite the coordination cycle holds the write lock; the unique number refuses any race)."""
    head = number_head(TASK_PREFIX, now)
    _lock(session)
    first = session.scalar(select(last_sequence(session, WorkOrder.number, head))) + 1
    return [number(head, sequence) for sequence in range(first, first + count)]


def description(instruction: Instruction) -> str:
    plan, feedback = instruction.plan, instruction.feedback
    return (
        f"{plan.name}：{plan.reason.strip()}\n起因（预警 {feedback.id}）：{feedback.reason.strip()}"
        f"\n预计成本 {plan.cost:,.0f} 元；完成后请记录客户的答复。"
    )


def carry_out_plans(
    session: Session, instructions: list[Instruction], now: dt.datetime | None = None
) -> list[Dispatch]:
    """Give each decided plan to staff as a task at `now`; returns what was given, in the
    order given, for those that could be carried out (a feedback naming neither a household
    nor a project has nobody to act for)."""
    actor = current_user(session)
    actor.require("ticket.handle", "派发任务")
    now = now or utcnow()
    if not instructions:
        return []
    teams = list(
        session.scalars(
            select(Team).where(Team.active.is_(True)).order_by(Team.kind == "vendor", Team.id)
        )
    )
    households = _household_projects(
        session, {i.feedback.household_id for i in instructions if i.feedback.household_id}
    )
    projects = set(session.scalars(select(Project.id)))
    jobs: list[_Job] = []
    for instruction in instructions:
        feedback, plan = instruction.feedback, instruction.plan
        household = feedback.household_id if feedback.household_id in households else None
        project = households.get(household) if household else feedback.project_id
        if project is not None and project not in projects:
            project = None
        if household is None and project is None:
            continue
        kind = plan.task if plan.task in TASK_KINDS else "call"
        if household is None:  # a project's feedback: its manager improves the project
            kind = "improvement"
        team = _team_for_plan(teams, plan.team)
        if team is None:
            raise CrmError(
                "还没有任何团队：请先用 crm team add 登记团队（或运行 crm init 建默认团队）。"
            )
        jobs.append(_Job(instruction, household, project, kind, team))
    if not jobs:
        return []

    # Two cycles at once must not both see a household without a task and both give one:
    # on PostgreSQL the task lock is taken before looking (SQLite's cycles hold the write lock).
    _lock(session)
    open_tasks = _open_tasks(session, jobs)
    fresh: list[_Job] = []
    joined: list[_Job] = []
    for job in jobs:
        key = _whose(job)
        if key in open_tasks:
            joined.append(job)
        else:
            open_tasks[key] = None  # this batch gives the task: later plans join it
            fresh.append(job)
    staff = _front_line(session, {job.team.id for job in fresh})
    managers = _managers(session, {job.project_id for job in fresh if job.project_id})
    calendar = sla.load_calendar(session)
    numbers = task_numbers(session, len(fresh), now)
    rows, dispatched = [], []
    for job, task_number in zip(fresh, numbers, strict=True):
        open_tasks[_whose(job)] = task_number
        who = _assignee(job, staff, managers)
        plan, feedback = job.instruction.plan, job.instruction.feedback
        rows.append(
            {
                "number": task_number,
                "ticket_id": None,
                "household_id": job.household_id,
                "project_id": job.project_id,
                "origin": ORIGIN,
                "feedback_ref": feedback.id,
                "decision_ref": str(job.instruction.decision_id),
                "kind": job.kind,
                "description": description(job.instruction),
                "team_id": job.team.id,
                "assignee_id": who[0] if who else None,
                "status": "open",
                "due_at": sla.add_minutes(now, TASK_KINDS[job.kind][1], calendar),
                "parent_id": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        dispatched.append(
            Dispatch(
                feedback_id=feedback.id,
                plan=plan.name,
                references=[task_number],
                team=job.team.code,
                team_name=job.team.name,
            )
        )
    if rows:
        session.execute(insert(WorkOrder.__table__), rows)
        record(
            session,
            "dispatch",
            "svc_work_orders",
            changes={"tasks": numbers},
            detail=f"协调派发任务 {len(rows)} 项（{rows[0]['number']} 起）",
        )
    for job in joined:
        task_number = open_tasks[_whose(job)]
        feedback = job.instruction.feedback
        session.execute(
            update(WorkOrder.__table__)
            .where(WorkOrder.__table__.c.number == task_number)
            .values(
                description=WorkOrder.__table__.c.description
                + f"\n另见预警 {feedback.id}（协调方案“{job.instruction.plan.name}”并入本任务）："
                + feedback.reason.strip()
            )
        )
        dispatched.append(
            Dispatch(
                feedback_id=feedback.id,
                plan=job.instruction.plan.name,
                references=[task_number],
                team=job.team.code,
                team_name=job.team.name,
            )
        )
    # In the order given.
    order = {i.feedback.id: n for n, i in enumerate(instructions)}
    return sorted(dispatched, key=lambda d: order[d.feedback_id])


def _whose(job: _Job) -> tuple[str, int]:
    """Whom a task follows up: the household, or else the project."""
    if job.household_id is not None:
        return ("household", job.household_id)
    return ("project", job.project_id)


def _open_tasks(session: Session, jobs: list[_Job]) -> dict[tuple[str, int], str | None]:
    """The open coordination tasks of the batch's households and projects, by whom."""
    households = sorted({job.household_id for job in jobs if job.household_id is not None})
    projects = sorted({job.project_id for job in jobs if job.household_id is None})
    task = (WorkOrder.ticket_id.is_(None), WorkOrder.origin == ORIGIN, WorkOrder.status == "open")
    found: dict[tuple[str, int], str | None] = {}
    for part in _chunks(households):
        for household, task_number in session.execute(
            select(WorkOrder.household_id, WorkOrder.number)
            .where(*task, WorkOrder.household_id.in_(part))
            .order_by(WorkOrder.id)
        ):
            found.setdefault(("household", household), task_number)
    for part in _chunks(projects):
        for project, task_number in session.execute(
            select(WorkOrder.project_id, WorkOrder.number)
            .where(*task, WorkOrder.household_id.is_(None), WorkOrder.project_id.in_(part))
            .order_by(WorkOrder.id)
        ):
            found.setdefault(("project", project), task_number)
    return found


def _household_projects(session: Session, ids: set[int]) -> dict[int, int | None]:
    found: dict[int, int | None] = {}
    for part in _chunks(sorted(ids)):
        found.update(
            session.execute(
                select(Household.id, Household.project_id).where(Household.id.in_(part))
            ).all()
        )
    return found


def _assignee(job: _Job, staff: dict, managers: dict) -> tuple[int, str] | None:
    if job.kind in MANAGER_TASKS:
        return managers.get(job.project_id) or managers.get(None)
    heap = staff[job.team.id]
    if not heap:
        return None
    load, name, staff_id = heapq.heappop(heap)
    heapq.heappush(heap, (load + 1, name, staff_id))
    return staff_id, name


def complete_task(
    session: Session,
    task_number: str,
    answer: str | None,
    accepted: bool | None,
    result: str | None = None,
    cost=None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> WorkOrder:
    """A task done: for a household, what the customer answered and whether they accepted
    it (both needed); for a project's improvement, what was improved. A compensation, gift or
    priority repair records what it cost. The decision log reads it at the next cycle."""
    current_user(session).require("ticket.handle", "完成任务")
    now = now or utcnow()
    task = get_work_order(session, task_number)
    if task.ticket_id is not None:
        raise CrmError(f"{task.number} 是工单下的派工单：请用 crm workorder done 完成。")
    if task.status != "open":
        raise CrmError(
            f"任务 {task.number} 的状态是“{WORK_ORDER_STATUS[task.status]}”，不能再完成。"
        )
    at = when_done(at, now, task.created_at, "任务派发的时间")
    answer = (answer or "").strip() or None
    result = (result or "").strip() or None
    if task.household_id is not None and (answer is None or accepted is None):
        raise CrmError(
            f"任务 {task.number} 是对客户的跟进：请记录客户的答复（--answer）以及客户是否接受"
            "（--accepted 或 --not-accepted）。"
        )
    if task.household_id is None and result is None:
        raise CrmError(f"任务 {task.number} 是项目整改：请写明整改结果（--result）。")
    spent = amount_of(cost)
    task.status = "done"
    task.completed_at = at
    task.completion_entered_at = now
    task.answer = answer
    task.accepted = accepted
    task.result = result or answer
    if task.kind in COST_KINDS:
        task.cost = spent
        task.cost_kind = COST_KINDS[task.kind] if spent is not None else None
    session.flush()
    return task


def dispatch_outcomes(session: Session, references: list[str]) -> dict[str, WorkOutcome]:
    """Task numbers (and work order numbers) -> their outcome: open, closed (with the
    customer's answer), cancelled or returned; ticket numbers of plans carried out before
    tasks existed -> open or closed."""
    from crm.plugins.service.models import Ticket
    from crm.plugins.service.rules import CLOSED_STATUSES

    found: dict[str, WorkOutcome] = {}
    for part in _chunks(sorted(set(references))):
        for ref, status in session.execute(
            select(Ticket.number, Ticket.status).where(Ticket.number.in_(part))
        ):
            found[ref] = WorkOutcome("closed" if status in CLOSED_STATUSES else "open")
        for order in session.execute(
            select(
                WorkOrder.number,
                WorkOrder.status,
                WorkOrder.answer,
                WorkOrder.accepted,
                WorkOrder.completed_at,
            ).where(WorkOrder.number.in_(part))
        ):
            found[order.number] = WorkOutcome(
                WORK_OUTCOMES.get(order.status, order.status),
                order.answer,
                order.accepted,
                order.completed_at,
            )
    return found
