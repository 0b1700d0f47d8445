"""A service centre run on a moving clock (`crm simulate`): months of customers calling and staff
working, driven through the same library functions the commands use, so what accumulates is
what a real centre would accumulate.

On a demo portfolio built at the start time, day after day:
- customers call with complaints, repairs, enquiries and suggestions at daily rates per
  household, sometimes call again about the same request (now and then raising its severity)
  or keep staff waiting, and answer revisits and periodic surveys;
- staff work each request through its steps (some late, some typed in afterwards with the time
  it happened, some promises broken and apologised for, some revisits unhappy: reopened, or
  closed with a manager's reason), finish coordination's tasks with the customer's answer,
  make the lifecycle calls, contact campaign lists and carry out the four-year visits with
  their rectifications;
- the periodic work runs as the scheduler would run it (crm.core.scheduler): the SLA check
  every few minutes, early warnings and a coordination cycle every morning, touchpoint planning,
  the campaigns on their schedules.

At the end of each month it measures what a centre manager looks at, and what must never happen:
complaints or warnings the system made for itself, a household's warning growing stronger with
no new word from the customer, the tracking card disagreeing with the tickets, a household
contacted twice for one cause, an action the system refused the simulated staff (a refusal
means the staff's normal work ran into a rule: it stops that request, which then shows as
stuck).

This module sits beside the CLI: it drives every plugin's library, as staff would through the
commands. Everything it does is seeded, so a run is reproducible for a seed, start and size.
Like `crm demo`, it refuses a database holding customer data the demo did not make.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from crm.core.clock import add_months, as_local, to_local
from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.core.models import (
    Building,
    Household,
    Project,
    Purchase,
    ServiceRecord,
    Unit,
)
from crm.core.security import User

MINUTE = dt.timedelta(minutes=1)
EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
# Requests per household and year (a property-service centre hears from an owner a few times a
# year: mostly repairs and questions).
YEARLY_RATES = {"repair": 0.8, "enquiry": 0.6, "complaint": 0.25, "suggestion": 0.05}
# When customers call: weights of the local hours 7…22.
CALL_HOURS = (2, 8, 10, 10, 9, 6, 7, 9, 9, 8, 7, 6, 5, 3, 2, 1)
SEVERITY = (("general", 60), ("important", 22), ("hot", 10), ("major", 8))
TYPED_LATE = 0.10  # a call taken on the phone and typed in 20-40 minutes later
LATE = 0.10  # work that runs past its time limit
BROKEN = 0.07  # a promise that cannot be kept
REPEAT_CALL = 0.08  # a customer calling again about an open request
WAITS = 0.04  # a request waiting for the customer a day or so
RETURNED = 0.03  # a repair beyond the technician's skill, back to the supervisor
OVERRIDDEN = 0.25  # of the unhappy revisits, closed with a manager's reason
TASK_LATE = 0.15
TASK_ACCEPTED = 0.8
TOUCHPOINT_REACHED = 0.85
CAMPAIGN_CONTACTED = 0.2  # of a run's list, reached within the week
PERIODIC_SURVEYS = 0.01  # of the households, each month
VISIT_ISSUES = 0.2  # of the four-year visits, with a nonconformity to rectify
AGENT = User("值班客服", "agent")
MANAGER = User("值班经理", "manager")
SCHEDULER = User("调度程序", "manager")


@dataclass
class Options:
    households: int = 3000
    months: int = 12
    seed: int = 2026
    # The first moment simulated, in UTC; the demo portfolio is built as of it.
    start: dt.datetime = field(
        default_factory=lambda: as_local(dt.datetime(2026, 1, 1)).astimezone(dt.UTC)
    )
    check_minutes: int = 5


@dataclass
class Month:
    """What one simulated month left behind (the must-be-zero figures named as such)."""

    month: str
    calls: int = 0
    open_tickets: int = 0
    stuck_tickets: int = 0
    system_complaints: int = 0
    warning_rises_without_event: int = 0
    card_mismatches: int = 0
    duplicate_contacts: int = 0
    refused_actions: int = 0
    breaches: int = 0
    escalations: int = 0
    warnings: int = 0
    tasks: int = 0
    tasks_open: int = 0
    decisions_closed: int = 0
    visits: int = 0
    surveys: int = 0
    satisfaction_rate: float | None = None
    nps: float | None = None

    MUST_BE_ZERO = (
        "system_complaints",
        "warning_rises_without_event",
        "card_mismatches",
        "duplicate_contacts",
        "refused_actions",
    )


@dataclass(order=True)
class _Event:
    at: dt.datetime
    seq: int
    work: Callable[[Session, dt.datetime], None] = field(compare=False)
    user: User = field(compare=False)
    label: str = field(compare=False, default="")


class Simulation:
    """Runs `options.months` months on the App's database (a new or a demo database)."""

    def __init__(self, app, options: Options, progress: Callable[[Month], None] | None = None):
        self.app = app
        self.options = options
        self.progress = progress
        self.rng = random.Random(options.seed * 31 + 7)
        self.queue: list[_Event] = []
        self.sequence = itertools.count()
        self.refusals: list[str] = []
        self.refusals_counted = 0
        self.calls = 0
        self.seconds = 0.0
        self.touchpoints_called: set[int] = set()
        self.jobs: dict = {}

    # --- the clock ----------------------------------------------------------------------------

    def at(self, moment: dt.datetime, work, user: User = AGENT, label: str = "") -> None:
        heapq.heappush(self.queue, _Event(moment, next(self.sequence), work, user, label))

    def _run_event(self, event: _Event) -> None:
        try:
            if isinstance(event.work, _Outside):  # a scheduled job opens its own sessions
                event.work(None, event.at)
                return
            with self.app.session() as session:
                session.info["user"] = event.user
                with transaction(session):
                    event.work(session, event.at)
        except CrmError as exc:
            self.refusals.append(f"{to_local(event.at):%Y-%m-%d %H:%M} {event.label}：{exc}")

    def run(self) -> list[Month]:
        started = time.perf_counter()
        self._build()
        self._work_backlog()
        end = self._month_start(self.options.months)
        months: list[Month] = []
        for index in range(self.options.months):
            self._plan_month(index)
        self._plan_jobs(end)
        boundary = self._month_start(1)
        month_index = 0
        while self.queue and month_index < self.options.months:
            if self.queue[0].at >= boundary:
                months.append(self._measure(month_index, boundary))
                month_index += 1
                boundary = self._month_start(month_index + 1)
                continue
            self._run_event(heapq.heappop(self.queue))
        while month_index < self.options.months:
            months.append(self._measure(month_index, boundary))
            month_index += 1
            boundary = self._month_start(month_index + 1)
        self.seconds = time.perf_counter() - started
        return months

    def _month_start(self, offset: int) -> dt.datetime:
        first = to_local(self.options.start).date().replace(day=1)
        start = as_local(dt.datetime.combine(add_months(first, offset), dt.time()))
        return max(start.astimezone(dt.UTC), self.options.start)

    # --- setting up ---------------------------------------------------------------------------

    def _build(self) -> None:
        from crm.core.demo import build_demo
        from crm.core.scheduler import set_schedule
        from crm.plugins.campaigns.campaigns import create_campaign, normalise_rule

        start = self.options.start
        with self.app.session() as session, transaction(session):
            session.info["user"] = MANAGER
            build_demo(session, self.options.households, self.options.seed, now=start)
        with self.app.session() as session, transaction(session):
            session.info["user"] = MANAGER
            set_schedule(session, "sla_check", f"{self.options.check_minutes}m", now=start)
            create_campaign(
                session, "SIM-REF", "老带新月度推荐", "referral", "电话",
                "{家庭}您好，{项目}老业主推荐新朋友购房有礼",
                normalise_rule(session, "referral", stages=["业主"], quiet_days=60),
                cron="0 9 1 * *",
            )  # fmt: skip
            create_campaign(
                session, "SIM-LOYAL", "一路同行季度关怀", "loyalty", "短信",
                "{家庭}您好，{项目}一路同行，感谢您的信任",
                normalise_rule(session, "loyalty", stages=["老业主"], quiet_days=80),
                cron="0 10 15 1,4,7,10 *",
            )  # fmt: skip
            # Owners with a flat handed over, and the flat each calls about (staff ask which).
            self.owners = [
                (code, f"{project}/{building}/{unit}")
                for code, project, building, unit in session.execute(
                    select(Household.code, Project.name, Building.name, Unit.code)
                    .join(Purchase, Purchase.household_id == Household.id)
                    .join(Unit, Unit.id == Purchase.unit_id)
                    .join(Building, Building.id == Unit.building_id)
                    .join(Project, Project.id == Building.project_id)
                    .where(Purchase.handover_date.is_not(None))
                    .order_by(Household.code, Purchase.id)
                )
            ]
            self.everyone = list(session.scalars(select(Household.code).order_by(Household.code)))

    def _plan_jobs(self, end: dt.datetime) -> None:
        """Each periodic job at each of its fire times up to the end, as the scheduler would."""
        from crm.core.scheduler import SYNC_JOB, planned_jobs

        with self.app.session() as session:
            session.info["user"] = SCHEDULER
            planned = [p for p in planned_jobs(session, self.options.start) if p.job.id != SYNC_JOB]
        for item in planned:
            trigger = item.schedule.trigger()
            moment = trigger.get_next_fire_time(None, self.options.start)
            while moment is not None and moment < end:
                self.at(moment.astimezone(dt.UTC), _Outside(self._job(item.job.id)),
                        SCHEDULER, item.job.id)  # fmt: skip
                moment = trigger.get_next_fire_time(moment, moment)

    def _job(self, job_id: str):
        """One run of a periodic job as the scheduler runs it (crm.core.scheduler.perform: the
        job's permission, then its work, in transactions it or perform opens), then what staff
        do about what it produced. The jobs on offer are looked up once a day (the real
        scheduler syncs them every few minutes; a simulated centre's campaigns change only
        when the simulation makes them)."""
        from crm.core.scheduler import find_job, perform

        def fire(_session, now):
            with self.app.session() as session:
                session.info["user"] = SCHEDULER
                day = to_local(now).date()
                key = (job_id, day)
                if key not in self.jobs:
                    self.jobs = {k: v for k, v in self.jobs.items() if k[1] == day}
                    self.jobs[key] = find_job(session, job_id, now)
                    session.rollback()
                perform(session, self.jobs[key], now)
            self._after_job(job_id, now)

        return fire

    def _work_backlog(self) -> None:
        """The requests the demo left open are worked to the end in the first days, as a
        centre taking over a backlog would."""
        from crm.plugins.service.models import Ticket
        from crm.plugins.service.rules import LAST_STEP

        with self.app.session() as session:
            rows = session.execute(
                select(Ticket.number, Ticket.ticket_type, Ticket.status).order_by(Ticket.id)
            ).all()
        start = to_local(self.options.start).date()
        for number, kind, status in rows:
            if status == LAST_STEP[kind]:
                continue
            moment = self._office_time(start + dt.timedelta(days=self.rng.randint(0, 3)))
            self.at(moment, self._drive(number), MANAGER, f"{number} 处理积压")

    def _drive(self, number: str):
        """One next step on a request whatever its state, then the one after, until its flow
        ends: how staff work a request they take over."""
        from crm.plugins.service import dispatch, repairs, tickets
        from crm.plugins.service.rules import LAST_STEP

        def finish_work(s, ticket, now, kinds) -> None:
            for order in tickets.open_work(s, ticket, kinds):
                dispatch.complete_work_order(s, order.number, "已处理完毕", now=now)

        def step(s: Session, now: dt.datetime) -> None:
            ticket = tickets.get_ticket(s, number)
            kind, status = ticket.ticket_type, ticket.status
            if status == LAST_STEP[kind]:
                return
            if status == "waiting_customer":
                tickets.step(s, number, "resume", note="业主已回", now=now)
            elif status == "accepted" and kind == "complaint":
                tickets.step(s, number, "confirm", now=now)
            elif status == "accepted" and kind == "repair":
                repairs.check_warranty(s, number, ticket.repair_item or "plumbing", now=now)
            elif status in ("accepted", "confirmed") and kind in ("complaint", "suggestion"):
                tickets.assess(
                    s, number, ticket.severity, ticket.category or "service",
                    ticket.expectations or ["fix_now"], now=now,
                )  # fmt: skip
            elif status == "assessed" and kind == "repair":
                if ticket.paid and not ticket.fee_rate:
                    repairs.quote_repair(s, number, "按价目表收费", now=now)
                if not tickets.open_work(s, ticket, ("repair",)):
                    repairs.start_repair(s, number, now=now)
                else:
                    tickets.step(s, number, "investigate", now=now)
            elif status == "assessed" and kind == "complaint":
                tickets.step(s, number, "investigate", now=now)
            elif status == "investigating" and kind == "repair":
                if tickets.open_work(s, ticket, ("repair",)):
                    paid = ticket.paid and not ticket.fee_signed_off
                    repairs.complete_repair(
                        s, number, "已修复", fee_amount=Decimal(100) if paid else None,
                        signed_by="业主" if paid else None, now=now,
                    )  # fmt: skip
                else:
                    repairs.start_repair(s, number, now=now)
            elif status in ("accepted", "assessed", "investigating"):  # a reply is next
                settle_late_promises(s, number, now)
                owner = ticket.owner.name if ticket.owner else "值班客服"
                promising = kind == "complaint"
                tickets.reply(
                    s, number, what="处理完毕并回电" if promising else None,
                    due_at=now + dt.timedelta(hours=4) if promising else None,
                    promised_by=owner if promising else None, note="已答复", now=now,
                )  # fmt: skip
            elif status == "replied":
                finish_work(s, ticket, now, ("remedial",))
                close_keeping_word(s, number, "业主确认问题已解决", now)
            elif status == "closed" and kind in ("complaint", "repair"):
                orders = tickets.open_work(s, ticket, ("revisit",))
                if orders:
                    dispatch.complete_work_order(
                        s, orders[0].number, "回访完成", now=now, revisit={"csat": 4, "nps": 8}
                    )
                else:
                    tickets.revisit(s, number, 4, nps=8, now=now)
            elif status in ("closed", "revisited"):  # the feedback step
                finish_work(s, ticket, now, ("remedial", "corrective"))
                tickets.feedback(
                    s, number, "积压工单复盘", "纳入作业指引", now=now,
                    causes=("not_heeded",) if ticket.ticket_type == "complaint" else (),
                )  # fmt: skip
            later = (
                self._next_office_time(now, hours=0.5)
                if status == "replied"
                else now + dt.timedelta(minutes=self.rng.randint(20, 90))
            )
            self.at(later, step, MANAGER, f"{number} 处理积压")

        return step

    # --- customers ----------------------------------------------------------------------------

    def _plan_month(self, index: int) -> None:
        """The month's calls, periodic surveys and four-year visits, drawn up front."""
        start, end = self._month_start(index), self._month_start(index + 1)
        days = (to_local(end).date() - to_local(start).date()).days
        households = self.options.households
        for kind, rate in YEARLY_RATES.items():
            per_day = rate * households / 365
            for day in range(days):
                for _ in range(self._poisson(per_day)):
                    moment = self._call_time(to_local(start).date() + dt.timedelta(days=day))
                    if start <= moment < end:
                        self.at(moment, self._opener(kind), label=f"受理{kind}")
        surveys = max(1, round(households * PERIODIC_SURVEYS))
        for _ in range(surveys):
            day = to_local(start).date() + dt.timedelta(days=self.rng.randrange(days))
            moment = self._office_time(day)
            if start <= moment < end:
                self.at(moment, self._periodic_survey, label="定期调查")
        self.at(start + 2 * MINUTE, self._plan_visits, label="四年之约排期")

    def _poisson(self, mean: float) -> int:
        count, threshold, product = 0, pow(2.718281828459045, -mean), self.rng.random()
        while product > threshold:
            count += 1
            product *= self.rng.random()
        return count

    def _call_time(self, day: dt.date) -> dt.datetime:
        hour = self.rng.choices(range(7, 23), CALL_HOURS)[0]
        local = dt.datetime.combine(day, dt.time(hour, self.rng.randrange(60)))
        return as_local(local).astimezone(dt.UTC)

    def _office_time(self, day: dt.date) -> dt.datetime:
        local = dt.datetime.combine(day, dt.time(self.rng.randint(9, 16), self.rng.randrange(60)))
        return as_local(local).astimezone(dt.UTC)

    def _next_office_time(self, after: dt.datetime, hours: float = 2) -> dt.datetime:
        """An office hour the next day at the earliest `hours` after `after`."""
        day = to_local(after).date() + DAY
        return max(self._office_time(day), after + dt.timedelta(hours=hours))

    def _opener(self, kind: str):
        """A call coming in at the event's time; now and then it is typed in 20-40 minutes
        later, with the time it came in (and the first answer given on the phone)."""

        def open_request(session: Session, arrival: dt.datetime) -> None:
            if kind == "enquiry":
                home, unit = self.rng.choice(self.everyone), None
            else:
                home, unit = self.rng.choice(self.owners)
            summary = self._summary(kind)
            if self.rng.random() < TYPED_LATE:
                entered = arrival + dt.timedelta(minutes=self.rng.randint(20, 40))
                self.at(
                    entered, lambda s, t: self._open(s, kind, home, unit, summary, t, arrival),
                    label=f"补登{kind}",
                )  # fmt: skip
            else:
                self._open(session, kind, home, unit, summary, arrival, arrival)

        return open_request

    def _open(self, session, kind, home, unit, summary, now, arrival) -> None:
        from crm.plugins.service import tickets

        self.calls += 1
        channel = "online" if kind == "suggestion" else "phone"
        ticket = tickets.open_ticket(
            session, home, kind, channel, summary, unit=unit, now=now, at=arrival
        )
        plan = _Request(ticket.number, kind, ticket.household_id, arrival, last=now)
        if now > arrival:  # the first answer was given on the phone, before it was typed in
            plan.first_at = arrival + dt.timedelta(minutes=self.rng.randint(1, 4))
        self._handle(plan, session)

    def _summary(self, kind: str) -> str:
        from crm.plugins.service import demo

        pools = {
            "complaint": [text for _, text, _ in demo.COMPLAINTS],
            "repair": [text for _, text in demo.REPAIRS],
            "enquiry": [text for _, text in demo.ENQUIRIES],
            "suggestion": [text for _, text in demo.SUGGESTIONS],
        }
        return self.rng.choice(pools[kind]).format(unit="本户")

    # --- staff working a request --------------------------------------------------------------

    def _handle(self, plan: _Request, session: Session) -> None:
        from crm.plugins.service import sla

        policy_for = sla.policy_for
        severity = "general"
        if plan.kind == "complaint":
            severity = self.rng.choices([s for s, _ in SEVERITY], [w for _, w in SEVERITY])[0]
        plan.severity = severity
        policy = policy_for(session, plan.kind, severity)
        calendar = sla.load_calendar(session) if policy.business_hours else None
        late = self.rng.random() < LATE
        total = policy.resolve_minutes * (
            self.rng.uniform(1.1, 2.0) if late else self.rng.uniform(0.3, 0.85)
        )

        def when(share: float) -> dt.datetime:
            return sla.add_minutes(plan.opened, total * share, calendar)

        steps = {
            "complaint": self._complaint_steps,
            "repair": self._repair_steps,
            "enquiry": self._enquiry_steps,
            "suggestion": self._suggestion_steps,
        }[plan.kind]
        steps(plan, when)

    def _step(
        self, plan: _Request, moment: dt.datetime, label: str, action, user: User = AGENT
    ) -> None:
        """One thing staff do on a request, unless an earlier step was refused (the request is
        then stuck, as it would be in a real centre, and shows up in the month's figures)."""

        def work(session: Session, now: dt.datetime) -> None:
            if plan.stopped:
                return
            try:
                action(session, now)
            except CrmError:
                plan.stopped = True
                raise

        moment = max(moment, plan.last + MINUTE)
        self.at(moment, work, user, label=f"{plan.number} {label}")
        plan.last = moment

    def _complaint_steps(self, plan: _Request, when) -> None:
        from crm.plugins.service import dispatch, tickets

        rng = self.rng
        category = rng.choice(["engineering", "design", "sales_management", "service"])
        expectations = rng.sample(["fix_now", "taken_seriously", "be_heard", "respect"], 2)
        number = plan.number

        self._step(
            plan, when(0.05), "确认",
            lambda s, t: tickets.step(s, number, "confirm", now=t, at=plan.first_at),
        )  # fmt: skip

        def assess(s, t):
            tickets.assess(s, number, plan.severity, category, expectations, now=t)
            ticket = tickets.get_ticket(s, number)
            due = max(when(0.9), t + dt.timedelta(minutes=30))
            dispatch.create_work_order(
                s, ticket, "remedial", "现场处理客户反映的问题", due_at=due, now=t
            )

        self._step(plan, when(0.15), "评估", assess)
        if rng.random() < REPEAT_CALL:
            raise_to = None
            if rng.random() < 0.5 and plan.severity != "major":
                raise_to = {"general": "important", "important": "hot", "hot": "major"}[
                    plan.severity
                ]
            self._step(
                plan, when(0.2), "客户再次来电",
                lambda s, t: tickets.record_contact(
                    s, number, "phone", "客户再次来电催促", severity=raise_to, now=t
                ),
            )  # fmt: skip
        self._step(
            plan, when(0.25), "调查", lambda s, t: tickets.step(s, number, "investigate", now=t)
        )
        broken = rng.random() < BROKEN
        close_at = when(0.95)
        due = when(0.7) if broken else close_at + dt.timedelta(minutes=rng.randint(10, 120))

        def reply(s, t):
            owner = tickets.get_ticket(s, number).owner
            tickets.reply(
                s, number, what="处理完毕并回电告知结果", due_at=max(due, t + MINUTE),
                promised_by=owner.name if owner else "值班客服", now=t,
            )  # fmt: skip

        self._step(plan, when(0.45), "回复承诺", reply)
        if broken:
            self._step(
                plan, when(0.8), "承诺未兑现致歉",
                lambda s, t: tickets.settle_broken_commitment(
                    s, number, "向业主致歉", "配件未到", "改用替代配件当天修复", now=t
                ),
            )  # fmt: skip
        self._finish_work(plan, when(0.85), ("remedial",))
        self._step(
            plan, close_at, "关闭",
            lambda s, t: close_keeping_word(s, number, "业主确认问题已解决", t),
        )  # fmt: skip
        if plan.severity in ("major", "hot"):
            self._step(
                plan, when(0.5), "纠正措施派工",
                lambda s, t: dispatch.create_work_order(
                    s, tickets.get_ticket(s, number), "corrective", "查找根本原因并整改",
                    due_at=t + 7 * DAY, now=t,
                ),
            )  # fmt: skip
            self._finish_work(
                plan, close_at + dt.timedelta(days=rng.uniform(2, 6)), ("corrective",)
            )
        self._revisit(plan, close_at, late=close_at > when(1.0))

    def _finish_work(self, plan: _Request, moment: dt.datetime, kinds: tuple[str, ...]) -> None:
        from crm.plugins.service import dispatch, tickets

        def finish(s, t):
            ticket = tickets.get_ticket(s, plan.number)
            for order in tickets.open_work(s, ticket, kinds):
                dispatch.complete_work_order(s, order.number, "已处理完毕", now=t)

        self._step(plan, moment, "派工完成", finish)

    def _revisit(self, plan: _Request, closed: dt.datetime, late: bool, round_: int = 1) -> None:
        """The revisit next day: unhappy customers get the request reopened (worked again and
        revisited again), or, now and then, a manager's reason to stop."""
        from crm.plugins.service import demo, tickets

        rng = self.rng
        weights = demo.CSAT_LATE if late else demo.CSAT_ON_TIME
        csat = rng.choices([c for c, _ in weights], [w for _, w in weights])[0]
        if round_ > 1:
            csat = max(csat, 3)  # the rework put it right
        nps = rng.randint(*demo.NPS_BY_CSAT[csat])
        unhappy = csat <= 2
        override = unhappy and rng.random() < OVERRIDDEN
        moment = self._next_office_time(closed)
        number = plan.number

        def revisit(s, t):
            if plan.kind == "repair":
                from crm.plugins.service import dispatch

                ticket = tickets.get_ticket(s, number)
                [order] = tickets.open_work(s, ticket, ("revisit",))
                dispatch.complete_work_order(
                    s, order.number, "回访完成", now=t,
                    revisit={"csat": csat, "nps": nps, "reopen_ticket": unhappy and not override,
                             "override": "客户要求超出合同约定，已解释" if override else None},
                )  # fmt: skip
                return
            tickets.revisit(
                s, number, csat, nps=nps, reopen_ticket=unhappy and not override,
                override="客户要求超出合同约定，已解释" if override else None, now=t,
            )  # fmt: skip

        # A manager takes an unhappy revisit: they may close it with a reason.
        self._step(plan, moment, f"回访（{csat} 分）", revisit, user=MANAGER)
        if unhappy and not override:
            self._rework(plan, moment + dt.timedelta(minutes=rng.randint(5, 30)), round_)
        elif plan.kind == "complaint":
            self._feedback(plan, moment)

    def _rework(self, plan: _Request, reopened: dt.datetime, round_: int) -> None:
        from crm.plugins.service import dispatch, tickets

        number = plan.number
        minutes = self.rng.uniform(20, 90)
        again = reopened + dt.timedelta(minutes=minutes)
        if plan.kind == "complaint":
            due = again + dt.timedelta(minutes=30)

            def reply(s, t):
                owner = tickets.get_ticket(s, number).owner
                tickets.reply(
                    s, number, what="返工处理并回电", due_at=max(due, t + MINUTE),
                    promised_by=owner.name if owner else "值班客服", now=t,
                )  # fmt: skip

            self._step(plan, reopened + dt.timedelta(minutes=minutes / 3), "返工承诺", reply)
            self._step(
                plan, again, "返工关闭",
                lambda s, t: close_keeping_word(s, number, "返工完成，业主确认", t),
            )  # fmt: skip
        else:  # a repair: another job, done and signed off again

            def redo(s, t):
                ticket = tickets.get_ticket(s, number)
                order = dispatch.create_work_order(
                    s, ticket, "repair", "返工维修", due_at=again + dt.timedelta(hours=1), now=t
                )
                plan.redo = order.number

            self._step(plan, reopened + MINUTE, "返工派工", redo)
            self._step(
                plan, again, "返工完工",
                lambda s, t: dispatch.complete_work_order(s, plan.redo, "返工完成", now=t),
            )  # fmt: skip
        self._revisit(plan, again, late=False, round_=round_ + 1)

    def _feedback(self, plan: _Request, revisited: dt.datetime) -> None:
        from crm.plugins.service import tickets

        moment = revisited + dt.timedelta(days=self.rng.uniform(1, 3))
        if plan.severity in ("major", "hot"):
            moment += 7 * DAY  # after the corrective action is done
        self._step(
            plan, moment, "信息反馈",
            lambda s, t: tickets.feedback(
                s, plan.number, "问题根源已查明", "纳入作业指引", now=t,
                causes=("expectation_unmet", "work_error"),
            ),
        )  # fmt: skip

    def _repair_steps(self, plan: _Request, when) -> None:
        from crm.plugins.service import dispatch, repairs, tickets

        rng = self.rng
        number = plan.number
        item = rng.choice([code for code in repairs.WARRANTY_ITEMS if code != "structure"])

        def check(s, t):
            checked = repairs.check_warranty(s, number, item, now=t, at=plan.first_at)
            plan.paid = checked["paid"]

        self._step(plan, when(0.1), "保修判断", check)

        def quote_and_start(s, t):
            if plan.paid:
                repairs.quote_repair(s, number, "材料费 30 元/个，人工费 20 元/次", now=t)
            order = repairs.start_repair(s, number, now=t)
            plan.redo = order.number

        self._step(plan, when(0.2), "派出维修", quote_and_start)
        if rng.random() < WAITS:
            self._step(
                plan, when(0.3), "等待客户",
                lambda s, t: tickets.step(s, number, "pause", note="业主不在家，约定改天", now=t),
            )  # fmt: skip
            back = when(0.3) + dt.timedelta(hours=rng.uniform(6, 36))
            self._step(
                plan, back, "恢复处理",
                lambda s, t: tickets.step(s, number, "resume", note="业主已回", now=t),
            )  # fmt: skip
            done = back + dt.timedelta(minutes=rng.uniform(10, 40))
        else:
            done = when(0.9)
        if rng.random() < RETURNED:

            def give_back(s, t):
                order = dispatch.return_to_supervisor(
                    s, plan.redo, "超出本人技能：需要专业木工", now=t
                )
                plan.redo = order.number

            self._step(plan, when(0.5) if done > when(0.5) else done - MINUTE, "退回主管",
                       give_back)  # fmt: skip

        def complete(s, t):
            if plan.paid:
                repairs.complete_repair(
                    s, number, "已修复", fee_amount=Decimal(rng.randint(4, 40) * 5),
                    signed_by="业主", now=t,
                )  # fmt: skip
            else:
                repairs.complete_repair(s, number, "已修复", now=t)

        self._step(plan, done, "完工", complete)
        self._revisit(plan, done, late=done > when(1.0))

    def _enquiry_steps(self, plan: _Request, when) -> None:
        from crm.plugins.service import tickets

        number = plan.number
        self._step(
            plan, when(0.3), "答复",
            lambda s, t: tickets.reply(s, number, note="已答复", now=t, at=plan.first_at),
        )  # fmt: skip
        self._step(
            plan, when(0.6), "关闭",
            lambda s, t: tickets.close(s, number, True, note="客户已知悉", now=t),
        )  # fmt: skip

    def _suggestion_steps(self, plan: _Request, when) -> None:
        from crm.plugins.service import tickets

        number = plan.number
        self._step(
            plan, when(0.1), "评估",
            lambda s, t: tickets.assess(
                s, number, "general", "service", [], now=t, at=plan.first_at
            ),
        )  # fmt: skip
        self._step(
            plan, when(0.6), "答复",
            lambda s, t: tickets.reply(s, number, note="感谢建议，已转相关部门", now=t),
        )  # fmt: skip
        close_at = when(0.8)
        self._step(
            plan, close_at, "关闭",
            lambda s, t: tickets.close(s, number, True, note="已答复建议人", now=t),
        )  # fmt: skip
        self._step(
            plan, close_at + dt.timedelta(days=self.rng.uniform(1, 5)), "信息反馈",
            lambda s, t: tickets.feedback(s, number, "业主建议", "已采纳并纳入改进计划", now=t),
        )  # fmt: skip

    # --- after the periodic jobs --------------------------------------------------------------

    def _after_job(self, job_id: str, now: dt.datetime) -> None:
        if job_id == "coordination":
            self._work_tasks(now)
        elif job_id == "lifecycle":
            self._make_touchpoint_calls(now)
        elif job_id.startswith("campaign:"):
            self._contact_campaign(job_id.partition(":")[2], now)

    def _work_tasks(self, now: dt.datetime) -> None:
        """Staff finish the tasks coordination gave them, with the customer's answer."""
        from crm.plugins.service.models import WorkOrder
        from crm.plugins.service.tasks import complete_task

        with self.app.session() as session:
            given = session.execute(
                select(WorkOrder.number, WorkOrder.due_at, WorkOrder.household_id).where(
                    WorkOrder.ticket_id.is_(None),
                    WorkOrder.status == "open",
                    WorkOrder.created_at == now,
                )
            ).all()
        for number, due, household in given:
            span = due - now
            share = self.rng.uniform(1.05, 1.5) if self.rng.random() < TASK_LATE else (
                self.rng.uniform(0.1, 0.9)
            )  # fmt: skip
            accepted = self.rng.random() < TASK_ACCEPTED
            answer = "客户接受，表示满意" if accepted else "客户仍不满意，希望进一步处理"

            def finish(s, t, number=number, household=household, accepted=accepted, answer=answer):
                if household is None:
                    complete_task(s, number, None, None, result="已整改并向业主通报", now=t)
                else:
                    complete_task(s, number, answer, accepted, now=t)

            self.at(now + span * share, finish, label=f"{number} 完成任务")

    def _make_touchpoint_calls(self, now: dt.datetime) -> None:
        from crm.plugins.campaigns.lifecycle import record_touchpoint
        from crm.plugins.campaigns.models import Touchpoint

        today = to_local(now).date()
        with self.app.session() as session:
            due = session.scalars(
                select(Touchpoint.id).where(
                    Touchpoint.done_at.is_(None), Touchpoint.due_on <= today
                )
            ).all()
        for point in due:
            if point in self.touchpoints_called:
                continue
            self.touchpoints_called.add(point)
            outcome = "answered" if self.rng.random() < TOUCHPOINT_REACHED else "no_answer"

            def call(s, t, point=point, outcome=outcome):
                # The caller works from the list as it is when calling: a touchpoint closed
                # since the morning (a four-year visit agreed meanwhile) is no longer on it.
                if s.get(Touchpoint, point).done_at is not None:
                    return
                record_touchpoint(s, point, outcome, "已联系", now=t)

            self.at(self._office_time(today), call, label=f"触点 {point}")

    def _contact_campaign(self, code: str, now: dt.datetime) -> None:
        from crm.plugins.campaigns.campaigns import record_attempt
        from crm.plugins.campaigns.models import Campaign, CampaignContact, CampaignRun

        with self.app.session() as session:
            rows = session.execute(
                select(CampaignRun.id, Household.code)
                .join(Campaign, Campaign.id == CampaignRun.campaign_id)
                .join(CampaignContact, CampaignContact.run_id == CampaignRun.id)
                .join(Household, Household.id == CampaignContact.household_id)
                .where(Campaign.code == code, CampaignRun.started_at == now)
            ).all()
        for run_id, household in rows:
            if self.rng.random() >= CAMPAIGN_CONTACTED:
                continue
            moment = self._office_time(
                to_local(now).date() + dt.timedelta(days=self.rng.randint(0, 6))
            )
            outcome = self.rng.choice(["answered", "no_answer", "interested", "declined"])
            self.at(
                max(moment, now + MINUTE),
                lambda s, t, run_id=run_id, household=household, outcome=outcome: record_attempt(
                    s, run_id, household, outcome, "活动回访", now=t
                ),
                label=f"活动 {code} 联系 {household}",
            )

    # --- surveys and visits -------------------------------------------------------------------

    def _periodic_survey(self, session: Session, now: dt.datetime) -> None:
        from crm.plugins.satisfaction.surveys import record_questionnaire
        from crm.plugins.service import demo

        csat = self.rng.choices(
            [c for c, _ in demo.CSAT_ON_TIME], [w for _, w in demo.CSAT_ON_TIME]
        )[0]
        nps, pairs = demo.answers(self.rng, csat, ("物业服务", "维修质量", "社区环境"))
        record_questionnaire(
            session, self.rng.choice(self.owners)[0], "periodic", csat=csat, nps=nps, aspects=pairs,
            now=now,
        )  # fmt: skip

    def _plan_visits(self, session: Session, now: dt.datetime) -> None:
        """The month's four-year visits: each unit due is visited on a working day of the
        month; a nonconformity is rectified before its due date and the customer revisited."""
        from crm.plugins.campaigns.revisits import due_list

        month = f"{to_local(now):%Y-%m}"
        start = to_local(now).date()
        end = add_months(start.replace(day=1), 1)
        for row in due_list(session, month):
            if row["visited"]:
                continue
            day = start + dt.timedelta(days=self.rng.randrange((end - start).days))
            moment = self._office_time(day)
            self.at(moment, self._visit(row["household"], row["unit"], month), label="四年之约走访")

    def _visit(self, code: str, unit: str, month: str):
        def visit(session: Session, now: dt.datetime) -> None:
            from crm.plugins.campaigns.revisits import record_visit, rectify

            today = to_local(now).date()
            issue = self.rng.random() < VISIT_ISSUES
            due = today + dt.timedelta(days=14)
            made = record_visit(
                session, code, month, today, "走访组", opinions="对小区环境总体满意",
                satisfaction=self.rng.choice([3, 4, 4, 5, 5]) if not issue else 3,
                nonconformities=[("外墙渗水", "工程部", due)] if issue else [],
                unit=unit, now=now,
            )  # fmt: skip
            if not issue:
                return
            visit_id, item = made.id, made.rectifications[0].id
            fixed = now + dt.timedelta(days=self.rng.randint(3, 12))
            self.at(
                fixed,
                lambda s, t: rectify(s, item, "已修补外墙并淋水试验", to_local(t).date(), now=t),
                label="四年之约整改",
            )
            self.at(
                self._next_office_time(fixed),
                lambda s, t: record_visit(
                    s, code, month, to_local(t).date(), "走访组", opinions="整改后满意",
                    satisfaction=5, unit=unit, follows=visit_id, now=t,
                ),
                label="四年之约回访",
            )  # fmt: skip

        return visit

    # --- what a month left behind -------------------------------------------------------------

    def _measure(self, index: int, end: dt.datetime) -> Month:
        start = self._month_start(index)
        row = Month(month=f"{to_local(start):%Y-%m}", calls=self.calls)
        self.calls = 0
        with self.app.session() as session:
            measure_month(session, row, start, end)
        row.refused_actions = len(self.refusals) - self.refusals_counted
        self.refusals_counted = len(self.refusals)
        if self.progress:
            self.progress(row)
        return row


class _Outside:
    """A job that opens its own sessions: run it without the event's transaction."""

    def __init__(self, work):
        self.work = work

    def __call__(self, session, now):
        self.work(session, now)


@dataclass
class _Request:
    number: str
    kind: str
    household_id: int
    opened: dt.datetime
    severity: str = "general"
    paid: bool | None = None
    redo: str | None = None
    stopped: bool = False
    # When the last step was planned (steps keep their order), and when the first answer was
    # given if it came before the request was typed in.
    last: dt.datetime = EPOCH
    first_at: dt.datetime | None = None


def settle_late_promises(session: Session, number: str, now: dt.datetime) -> None:
    """A promise that ran out before the work was done is apologised for, as the system asks
    before the next promise or the closing."""
    from crm.plugins.service import tickets

    ticket = tickets.get_ticket(session, number)
    if any(
        (c.status == "open" and c.due_at < now) or (c.status == "broken" and not c.settled_at)
        for c in ticket.commitments
    ):
        tickets.settle_broken_commitment(
            session, number, "向业主致歉", "处理时间超出预计", "当天处理完毕并回电", now=now
        )


def close_keeping_word(session: Session, number: str, note: str, now: dt.datetime) -> None:
    """Close a request as an agent does, its late promises apologised for first."""
    from crm.plugins.service import tickets

    settle_late_promises(session, number, now)
    tickets.close(session, number, True, note=note, now=now)


def measure_month(session: Session, row: Month, start: dt.datetime, end: dt.datetime) -> None:
    """Fill in `row` for the month [start, end) from the database."""
    from crm.plugins.coordination.models import Decision
    from crm.plugins.satisfaction.models import FeedbackRecord, Survey
    from crm.plugins.service.models import Escalation, Ticket, TicketEvent, WorkOrder
    from crm.plugins.service.rules import CLOSED_STATUSES

    open_ticket = Ticket.status.not_in(CLOSED_STATUSES)
    row.open_tickets = session.scalar(
        select(func.count()).select_from(Ticket).where(open_ticket, Ticket.opened_at < end)
    )
    row.stuck_tickets = session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(open_ticket, Ticket.opened_at < end - 14 * DAY, Ticket.opened_at >= start - 60 * DAY)
    )
    row.system_complaints = _system_complaints(session, start, end)
    row.warning_rises_without_event = warning_rises_without_event(session, start, end)
    row.card_mismatches = card_mismatches(session)
    row.duplicate_contacts = duplicate_contacts(session, start, end)
    row.breaches = session.scalar(
        select(func.count())
        .select_from(TicketEvent)
        .where(
            TicketEvent.action.in_(("response_breach", "resolve_breach")),
            TicketEvent.at >= start,
            TicketEvent.at < end,
        )
    )
    row.escalations = session.scalar(
        select(func.count())
        .select_from(Escalation)
        .where(Escalation.fired_at >= start, Escalation.fired_at < end)
    )
    row.warnings = session.scalar(
        select(func.count())
        .select_from(FeedbackRecord)
        .where(FeedbackRecord.detected_at >= start, FeedbackRecord.detected_at < end)
    )
    task = WorkOrder.ticket_id.is_(None)
    row.tasks = session.scalar(
        select(func.count())
        .select_from(WorkOrder)
        .where(task, WorkOrder.created_at >= start, WorkOrder.created_at < end)
    )
    row.tasks_open = session.scalar(
        select(func.count()).select_from(WorkOrder).where(task, WorkOrder.status == "open")
    )
    row.decisions_closed = session.scalar(
        select(func.count())
        .select_from(Decision)
        .where(Decision.closed_at >= start, Decision.closed_at < end)
    )
    from crm.plugins.campaigns.models import Visit

    row.visits = session.scalar(
        select(func.count())
        .select_from(Visit)
        .where(Visit.visited_on >= to_local(start).date(), Visit.visited_on < to_local(end).date())
    )
    taken = (Survey.taken_at >= start, Survey.taken_at < end)
    surveys, satisfied, promoters, detractors, rated = session.execute(
        select(
            func.count(),
            func.sum(case((Survey.csat >= 4, 1), else_=0)),
            func.sum(case((Survey.nps >= 9, 1), else_=0)),
            func.sum(case((Survey.nps <= 6, 1), else_=0)),
            func.count(Survey.nps),
        ).where(*taken)
    ).one()
    answered = session.scalar(select(func.count(Survey.csat)).where(*taken))
    row.surveys = int(surveys or 0)
    row.satisfaction_rate = (satisfied or 0) / answered if answered else None
    row.nps = 100 * ((promoters or 0) - (detractors or 0)) / rated if rated else None


def _system_complaints(session: Session, start: dt.datetime, end: dt.datetime) -> int:
    """Complaints and warnings made by the system that count as a customer's: complaint
    tickets not from a customer, register complaint entries that are not a customer's ticket
    or an imported record, repeat-complaint warnings citing a ticket not from a customer."""
    from crm.plugins.satisfaction.models import FeedbackRecord
    from crm.plugins.service.models import Ticket, WorkOrder
    from crm.plugins.service.rules import CUSTOMER

    tickets = session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(
            Ticket.ticket_type == "complaint",
            Ticket.origin != CUSTOMER,
            Ticket.opened_at >= start,
            Ticket.opened_at < end,
        )
    )
    entries = session.scalar(
        select(func.count())
        .select_from(ServiceRecord)
        .outerjoin(Ticket, Ticket.number == ServiceRecord.record_no)
        .where(
            ServiceRecord.kind == "complaint",
            ServiceRecord.managed_by.is_not(None),
            or_(Ticket.id.is_(None), Ticket.origin != CUSTOMER),
        )
    )
    tasks_on_register = session.scalar(
        select(func.count())
        .select_from(ServiceRecord)
        .join(WorkOrder, WorkOrder.number == ServiceRecord.record_no)
    )
    warnings = 0
    for (key,) in session.execute(
        select(FeedbackRecord.key).where(
            FeedbackRecord.kind == "repeat_complaint",
            FeedbackRecord.detected_at >= start,
            FeedbackRecord.detected_at < end,
        )
    ):
        number = key.rsplit(":", 1)[-1]
        origin = session.scalar(select(Ticket.origin).where(Ticket.number == number))
        warnings += origin != CUSTOMER
    return int(tickets + entries + tasks_on_register + warnings)


def warning_rises_without_event(session: Session, start: dt.datetime, end: dt.datetime) -> int:
    """Households whose new warning this month is stronger than their previous one although
    the customer did nothing in between: no request of theirs opened, no repeat call, no survey
    answered, no promise to them broken."""
    from crm.plugins.satisfaction.models import FeedbackRecord, Survey
    from crm.plugins.service.models import Commitment, Ticket, TicketEvent
    from crm.plugins.service.rules import CUSTOMER

    new = session.execute(
        select(FeedbackRecord.household_id, FeedbackRecord.detected_at, FeedbackRecord.strength)
        .where(
            FeedbackRecord.household_id.is_not(None),
            FeedbackRecord.detected_at >= start,
            FeedbackRecord.detected_at < end,
        )
        .order_by(FeedbackRecord.detected_at, FeedbackRecord.id)
    ).all()
    rises = set()
    for household, detected, strength in new:
        before = session.execute(
            select(FeedbackRecord.detected_at, FeedbackRecord.strength)
            .where(FeedbackRecord.household_id == household, FeedbackRecord.detected_at < detected)
            .order_by(FeedbackRecord.detected_at.desc(), FeedbackRecord.id.desc())
            .limit(1)
        ).first()
        if before is None or strength <= before.strength:
            continue
        since = before.detected_at

        def window(column, since=since, detected=detected):
            return and_(column > since, column <= detected)

        events = (
            session.scalar(
                select(func.count())
                .select_from(Ticket)
                .where(
                    Ticket.household_id == household,
                    Ticket.origin == CUSTOMER,
                    window(Ticket.opened_at),
                )
            )
            + session.scalar(
                select(func.count())
                .select_from(TicketEvent)
                .join(Ticket, Ticket.id == TicketEvent.ticket_id)
                .where(
                    Ticket.household_id == household,
                    TicketEvent.action == "contact",
                    window(TicketEvent.at),
                )
            )
            + session.scalar(
                select(func.count())
                .select_from(Survey)
                .where(Survey.household_id == household, window(Survey.taken_at))
            )
            + session.scalar(
                select(func.count())
                .select_from(Commitment)
                .join(Ticket, Ticket.id == Commitment.ticket_id)
                .where(
                    Ticket.household_id == household,
                    Commitment.status == "broken",
                    window(func.coalesce(Commitment.settled_at, Commitment.due_at)),
                )
            )
        )
        if not events:
            rises.add(household)
    return len(rises)


def card_mismatches(session: Session) -> int:
    """Tickets whose entry in the register (what the tracking card, the export and the counts
    read) is missing, doubled or in another state than the ticket; tasks count none."""
    from crm.plugins.service.models import Ticket
    from crm.plugins.service.rules import CLOSED_STATUSES

    expected = case((Ticket.status.in_(CLOSED_STATUSES), "closed"), else_="open")
    wrong = session.scalar(
        select(func.count())
        .select_from(Ticket)
        .outerjoin(ServiceRecord, ServiceRecord.record_no == Ticket.number)
        .where(
            Ticket.origin != "coordination",
            or_(
                ServiceRecord.id.is_(None),
                ServiceRecord.status != expected,
                ServiceRecord.household_id != Ticket.household_id,
                ServiceRecord.managed_by.is_(None),
            ),
        )
    )
    orphans = session.scalar(
        select(func.count())
        .select_from(ServiceRecord)
        .outerjoin(Ticket, Ticket.number == ServiceRecord.record_no)
        .where(ServiceRecord.managed_by.is_not(None), Ticket.id.is_(None))
    )
    return int(wrong + orphans)


def duplicate_contacts(session: Session, start: dt.datetime, end: dt.datetime) -> int:
    """A household contacted twice for one cause: a feedback record carried out by more than
    one task, a coordination task given while another for the same household is still open,
    a household listed twice on a campaign run, a lifecycle touchpoint planned twice."""
    from crm.plugins.campaigns.models import CampaignContact, Touchpoint
    from crm.plugins.service.models import WorkOrder

    task = WorkOrder.ticket_id.is_(None)
    per_feedback = select(WorkOrder.feedback_ref).where(task, WorkOrder.feedback_ref.is_not(None))
    twice = session.scalar(
        select(func.count()).select_from(
            per_feedback.group_by(WorkOrder.feedback_ref).having(func.count() > 1).subquery()
        )
    )
    other = WorkOrder.__table__.alias("other")
    overlapping = session.scalar(
        select(func.count())
        .select_from(WorkOrder)
        .join(
            other,
            and_(
                other.c.household_id == WorkOrder.household_id,
                other.c.ticket_id.is_(None),
                other.c.id < WorkOrder.id,
                other.c.created_at <= WorkOrder.created_at,
                or_(other.c.completed_at.is_(None), other.c.completed_at > WorkOrder.created_at),
            ),
        )
        .where(
            task,
            WorkOrder.household_id.is_not(None),
            WorkOrder.created_at >= start,
            WorkOrder.created_at < end,
        )
    )
    listed = session.scalar(
        select(func.count()).select_from(
            select(CampaignContact.run_id, CampaignContact.household_id)
            .group_by(CampaignContact.run_id, CampaignContact.household_id)
            .having(func.count() > 1)
            .subquery()
        )
    )
    planned = session.scalar(
        select(func.count()).select_from(
            select(Touchpoint.household_id, Touchpoint.kind, Touchpoint.due_on)
            .group_by(Touchpoint.household_id, Touchpoint.kind, Touchpoint.due_on)
            .having(func.count() > 1)
            .subquery()
        )
    )
    return int(twice + overlapping + listed + planned)
