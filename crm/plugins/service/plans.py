"""Carrying out coordination's plans (协调派工), a batch at a time.

For each feedback and its chosen plan: a ticket of the plan's type under a new register number
for the household, with the feedback's reason and the plan's reason in its summary; the
ticket given to the plan's team (a team kind or code; the customer service centre otherwise)
and to that team's least-loaded front-line person, who also gets a remedial work order saying
what the plan is, due when the ticket is. The rows and events are those open_ticket,
assigning and create_work_order write for one request (same numbers, notes and due times);
here they are written set-based, so a batch of hundreds costs a few statements: one number
allocation per ticket type, one load query, executemany inserts, one audit entry.

A feedback without a known household cannot have a ticket: it gets no Dispatch, and
coordination records it as not carried out.
"""

from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import dataclass

from sqlalchemy import Integer, cast, func, insert, select
from sqlalchemy.orm import Session

from crm.core.audit import current_user, record
from crm.core.chain import Dispatch, Feedback, Plan
from crm.core.clock import to_local
from crm.core.errors import CrmError
from crm.core.models import Household, utcnow
from crm.plugins.service import sla
from crm.plugins.service.dispatch import WORK_ORDER_KINDS, open_load
from crm.plugins.service.models import Staff, Team, Ticket, TicketEvent, WorkOrder
from crm.plugins.service.tickets import (
    CHANNELS,
    CLOSED_STATUSES,
    NUMBER_LOCK,
    PREFIXES,
    TICKET_TYPES,
)

# Coordination follows the customer up by phone.
CHANNEL = "phone"
WORK_KIND = "remedial"
NO_STAFF = "（团队暂无一线人员，待指派）"
# Work order status -> what coordination's decision log is told.
WORK_OUTCOMES = {"open": "open", "done": "closed", "cancelled": "cancelled", "returned": "returned"}
CHUNK = 500


@dataclass
class _Job:
    feedback: Feedback
    plan: Plan
    household_id: int
    project_id: int | None
    team: Team


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _households(session: Session, codes: set[str]) -> dict[str, tuple[int, int | None]]:
    found = {}
    for part in _chunks(sorted(codes)):
        rows = session.execute(
            select(Household.code, Household.id, Household.project_id).where(
                Household.code.in_(part)
            )
        )
        found.update({code: (hid, project) for code, hid, project in rows})
    return found


def _team_for_plan(teams: list[Team], wanted: str | None) -> Team | None:
    """The team named by code, else the first of that kind (vendors last), else the customer
    service centre, which takes every request first."""
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
    order least_loaded picks them in."""
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


def _numbers(session: Session, ticket_type: str, count: int, now: dt.datetime) -> list[str]:
    """`count` consecutive register numbers of the day, drawn under the same lock as
    open_ticket's (SQLite serialises writers; the unique number refuses any race)."""
    head = f"{PREFIXES[ticket_type]}{to_local(now):%Y%m%d}-"
    day = [Ticket.number.like(f"{head}%")]
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(NUMBER_LOCK)))
    else:
        # SQLite's case-insensitive LIKE cannot use the number index; this range can, so the
        # day's numbers are read from the index instead of every ticket row. (Collation-aware
        # PostgreSQL orders '-' differently, so it keeps the LIKE alone.)
        day += [Ticket.number >= head, Ticket.number < head[:-1] + chr(ord(head[-1]) + 1)]
    last = session.scalar(
        select(func.max(cast(func.substr(Ticket.number, len(head) + 1), Integer))).where(*day)
    )
    first = (last or 0) + 1
    return [f"{head}{seq:04d}" for seq in range(first, first + count)]


def _due_times(session: Session, ticket_type: str, now: dt.datetime) -> dict[str, dt.datetime]:
    """The SLA due times of a general ticket of this type opened now (sla.start_clock on a
    ticket that is never saved)."""
    probe = Ticket(ticket_type=ticket_type, severity="general", opened_at=now, paused_minutes=0.0)
    sla.start_clock(session, probe, now)
    return {
        "response_due_at": probe.response_due_at,
        "resolve_due_at": probe.resolve_due_at,
        "resolve_warn_at": probe.resolve_warn_at,
    }


def summary_of(feedback: Feedback, plan: Plan) -> str:
    return f"{feedback.reason.strip()}\n协调方案“{plan.name}”：{plan.reason.strip()}"


def work_description(plan: Plan) -> str:
    return f"{plan.name}：{plan.reason.strip()}（预计成本 {plan.cost:,.0f} 元）"


def carry_out_plans(
    session: Session, decisions: list[tuple[Feedback, Plan]], now: dt.datetime | None = None
) -> list[Dispatch]:
    """Open, assign and dispatch the work of each (feedback, plan); returns what was opened,
    in the order given, for those that could be carried out."""
    actor = current_user(session)
    actor.require("ticket.handle", "派工")
    now = now or utcnow()
    if not decisions:
        return []
    households = _households(session, {f.household_code for f, _ in decisions if f.household_code})
    teams = list(
        session.scalars(
            select(Team).where(Team.active.is_(True)).order_by(Team.kind == "vendor", Team.id)
        )
    )
    jobs: list[_Job] = []
    for feedback, plan in decisions:
        home = households.get(feedback.household_code or "")
        if home is None or plan.ticket_type not in TICKET_TYPES:
            continue
        team = _team_for_plan(teams, plan.team)
        if team is None:
            raise CrmError(
                "还没有任何团队：请先用 crm team add 登记团队（或运行 crm init 建默认团队）。"
            )
        jobs.append(_Job(feedback, plan, home[0], home[1], team))
    if not jobs:
        return []

    staff = _front_line(session, {job.team.id for job in jobs})
    numbers: dict[str, list[str]] = {}
    due: dict[str, dict[str, dt.datetime]] = {}
    for ticket_type in sorted({job.plan.ticket_type for job in jobs}):
        count = sum(job.plan.ticket_type == ticket_type for job in jobs)
        numbers[ticket_type] = _numbers(session, ticket_type, count, now)[::-1]
        due[ticket_type] = _due_times(session, ticket_type, now)

    tickets, owners = [], []
    for job in jobs:
        heap = staff[job.team.id]
        owner = None
        if heap:
            # The ticket and its work order both go to the person: two more open items.
            load, name, staff_id = heapq.heappop(heap)
            heapq.heappush(heap, (load + 2, name, staff_id))
            owner = (staff_id, name)
        owners.append(owner)
        tickets.append(
            {
                "number": numbers[job.plan.ticket_type].pop(),
                "ticket_type": job.plan.ticket_type,
                "channel": CHANNEL,
                "household_id": job.household_id,
                "unit_id": None,
                "project_id": job.project_id,
                "building_id": None,
                "summary": summary_of(job.feedback, job.plan),
                "status": "accepted",
                "severity": "general",
                "category": None,
                "expectations": [],
                "team_id": job.team.id,
                "owner_id": owner[0] if owner else None,
                "escalation_level": 1,
                "reported_by": actor.name,
                "opened_at": now,
                "paused_minutes": 0.0,
                "reopen_count": 0,
                "customer_confirmed": False,
                "response_breached": False,
                "resolve_breached": False,
                "fee_signed_off": False,
                "version": 1,
                **due[job.plan.ticket_type],
            }
        )
    t = Ticket.__table__
    # Ids matched by number: asking for them in parameter order makes SQLite insert one row
    # at a time.
    by_number = dict(session.execute(insert(t).returning(t.c.number, t.c.id), tickets).all())
    ids = [by_number[row["number"]] for row in tickets]

    events, orders, dispatched = [], [], []
    for job, row, ticket_id, owner in zip(jobs, tickets, ids, owners, strict=True):
        who = owner[1] if owner else None
        order_number = f"{row['number']}-01"
        due_at = row["resolve_due_at"]
        base = {"ticket_id": ticket_id, "at": now, "actor": actor.name}
        events += [
            base
            | {
                "action": "open",
                "from_status": None,
                "to_status": "accepted",
                "note": f"{CHANNELS[CHANNEL]}受理：{row['summary']}",
            },
            base
            | {
                "action": "assign",
                "from_status": "accepted",
                "to_status": "accepted",
                "note": f"派给 {job.team.name}：{who or NO_STAFF}",
            },
            base
            | {
                "action": "dispatch",
                "from_status": "accepted",
                "to_status": "accepted",
                "note": f"派工单 {order_number}（{WORK_ORDER_KINDS[WORK_KIND]}）→ "
                f"{job.team.name}：{who or '待指派'}，时限 {due_at.isoformat()}",
            },
        ]
        orders.append(
            {
                "number": order_number,
                "ticket_id": ticket_id,
                "kind": WORK_KIND,
                "description": work_description(job.plan),
                "team_id": job.team.id,
                "assignee_id": owner[0] if owner else None,
                "status": "open",
                "due_at": due_at,
                "parent_id": None,
            }
        )
        dispatched.append(
            Dispatch(
                feedback_id=job.feedback.id,
                plan=job.plan.name,
                references=[row["number"], order_number],
                team=job.team.code,
            )
        )
    session.execute(insert(TicketEvent.__table__), events)
    session.execute(insert(WorkOrder.__table__), orders)
    ticket_numbers = [row["number"] for row in tickets]
    record(
        session,
        "dispatch",
        "svc_tickets",
        changes={"tickets": ticket_numbers, "work_orders": [o["number"] for o in orders]},
        detail=f"协调派工：新建工单 {len(tickets)} 张并各派补救措施派工单 1 张"
        f"（{ticket_numbers[0]} 起）",
    )
    return dispatched


def dispatch_outcomes(session: Session, references: list[str]) -> dict[str, str]:
    """Ticket numbers -> open or closed; work order numbers -> open, closed, cancelled or
    returned (continued by a new work order)."""
    found: dict[str, str] = {}
    for part in _chunks(sorted(set(references))):
        for number, status in session.execute(
            select(Ticket.number, Ticket.status).where(Ticket.number.in_(part))
        ):
            found[number] = "closed" if status in CLOSED_STATUSES else "open"
        for number, status in session.execute(
            select(WorkOrder.number, WorkOrder.status).where(WorkOrder.number.in_(part))
        ):
            found[number] = WORK_OUTCOMES.get(status, status)
    return found
