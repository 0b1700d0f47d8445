"""SLA clocks (服务时限): a first-response and a resolution target per ticket type and severity,
optionally counted in business hours, stopped while the ticket waits for the customer, with a
warning before the breach and the breach itself on record.

The default targets, which ticket types count business hours and the warning point are
service rules (rules.py); `crm sla set` changes any target, and a change applies to tickets
opened or re-clocked afterwards.

Business hours come from the `settings` table, read in the business time zone
(crm.core.clock): `service.business_hours` (default 08:30-18:00) and `service.business_days`
(ISO weekdays, default 1-7: the service centre opens every day).

Due times are stored on the ticket, so the periodic check is a handful of set-based UPDATEs
over indexed columns. Waiting for the customer moves the due times out by the paused clock
time; a ticket whose due time has already gone keeps its breach even when a new severity
would allow more time.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cache

from sqlalchemy import Select, and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from crm.core.audit import current_user, record
from crm.core.clock import local_zone
from crm.core.errors import CrmError
from crm.core.models import Setting
from crm.core.vocab import code_of
from crm.plugins.service.models import Commitment, SlaPolicy, Ticket, TicketEvent
from crm.plugins.service.rules import (
    DEFAULT_DAYS,
    DEFAULT_HOURS,
    DEFAULT_WARN_RATIO,
    RUNNING,
    SEVERITIES,
    TICKET_TYPES,
    default_policies,
)

DUE_COLUMNS = ("response_due_at", "resolve_due_at", "resolve_warn_at")
HOURS_KEY = "service.business_hours"
DAYS_KEY = "service.business_days"


# --- policies ---------------------------------------------------------------------------------


def ensure_default_policies(session: Session) -> None:
    """The default targets, only into a database that has no policy yet."""
    if session.scalar(select(func.count(SlaPolicy.id))):
        return
    session.add_all(SlaPolicy(**row) for row in default_policies())
    session.flush()


def policy_for(session: Session, ticket_type: str, severity: str) -> SlaPolicy:
    policy = session.scalar(
        select(SlaPolicy).where(
            SlaPolicy.ticket_type == ticket_type, SlaPolicy.severity == severity
        )
    )
    if policy is None:
        raise CrmError(
            f"没有{TICKET_TYPES.get(ticket_type, ticket_type)}·{SEVERITIES.get(severity, severity)}"
            f"的服务时限：请先用 crm sla set {ticket_type} {severity} 设定。"
        )
    return policy


def list_policies(session: Session) -> list[dict]:
    policies = session.scalars(select(SlaPolicy)).all()
    order = {key: i for i, key in enumerate([*TICKET_TYPES, *SEVERITIES])}
    policies = sorted(
        policies, key=lambda p: (order.get(p.ticket_type, 99), order.get(p.severity, 99))
    )
    return [
        {
            "ticket_type": p.ticket_type,
            "severity": p.severity,
            "response_minutes": p.response_minutes,
            "resolve_minutes": p.resolve_minutes,
            "business_hours": p.business_hours,
            "warn_ratio": p.warn_ratio,
        }
        for p in policies
    ]


def set_policy(
    session: Session,
    ticket_type: str,
    severity: str,
    response_minutes: int | None = None,
    resolve_minutes: int | None = None,
    business_hours: bool | None = None,
    warn_ratio: float | None = None,
) -> SlaPolicy:
    """Create or change one policy (manager's decision); unspecified values stay as they are."""
    current_user(session).require("service.configure", "修改服务时限")
    ticket_type = code_of(TICKET_TYPES, ticket_type, "工单类型")
    severity = code_of(SEVERITIES, severity, "严重程度")
    policy = session.scalar(
        select(SlaPolicy).where(
            SlaPolicy.ticket_type == ticket_type, SlaPolicy.severity == severity
        )
    )
    if policy is None:
        if response_minutes is None or resolve_minutes is None:
            raise CrmError("新设时限标准须同时给出首次响应和解决时限（分钟）。")
        policy = SlaPolicy(
            ticket_type=ticket_type, severity=severity, warn_ratio=DEFAULT_WARN_RATIO
        )
        session.add(policy)
    if response_minutes is not None:
        policy.response_minutes = response_minutes
    if resolve_minutes is not None:
        policy.resolve_minutes = resolve_minutes
    if business_hours is not None:
        policy.business_hours = business_hours
    if warn_ratio is not None:
        policy.warn_ratio = warn_ratio
    if policy.business_hours is None:
        policy.business_hours = False
    if policy.response_minutes <= 0 or policy.resolve_minutes <= 0:
        raise CrmError("时限必须是正的分钟数。")
    if policy.response_minutes > policy.resolve_minutes:
        raise CrmError("首次响应时限不能长于解决时限。")
    if not 0 < policy.warn_ratio < 1:
        raise CrmError("预警比例须在 0 与 1 之间，如 0.8 表示用去八成时间时预警。")
    session.flush()
    return policy


# --- business hours ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Calendar:
    """Opening hours in the business zone, the same on each of the business days."""

    opens: dt.time
    closes: dt.time
    days: frozenset[int]  # ISO weekdays, 1 = Monday

    def window(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        if day.isoweekday() not in self.days:
            return None
        zone = local_zone()
        return dt.datetime.combine(day, self.opens, zone), dt.datetime.combine(
            day, self.closes, zone
        )


def parse_hours(text: str) -> tuple[dt.time, dt.time]:
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    try:
        if match is None:
            raise ValueError(text)
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        opens, closes = dt.time(h1, m1), dt.time(h2, m2)
    except ValueError:
        raise CrmError(f"设置 {HOURS_KEY}={text!r} 看不懂：请写成 08:30-18:00。") from None
    if opens >= closes:
        raise CrmError(f"设置 {HOURS_KEY}={text!r} 的下班时间须晚于上班时间（不支持跨午夜）。")
    return opens, closes


def parse_days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.replace("，", ",").split(","):
        bounds = part.strip().split("-")
        try:
            low, high = int(bounds[0]), int(bounds[-1])
        except ValueError:
            low = high = 0
        if len(bounds) > 2 or not 1 <= low <= high <= 7:
            raise CrmError(f"设置 {DAYS_KEY}={text!r} 看不懂：请写成 1-5 或 1-5,7（1 为周一）。")
        days.update(range(low, high + 1))
    return frozenset(days)


def load_calendar(session: Session) -> Calendar:
    values = dict(
        session.execute(
            select(Setting.key, Setting.value).where(Setting.key.in_((HOURS_KEY, DAYS_KEY)))
        ).all()
    )
    opens, closes = parse_hours(values.get(HOURS_KEY, DEFAULT_HOURS))
    return Calendar(opens, closes, parse_days(values.get(DAYS_KEY, DEFAULT_DAYS)))


def add_minutes(start: dt.datetime, minutes: float, calendar: Calendar | None) -> dt.datetime:
    """`start` plus `minutes` of clock time: wall time, or business time when a calendar is given."""
    if calendar is None:
        return start + dt.timedelta(minutes=minutes)
    moment = start.astimezone(local_zone())
    remaining = dt.timedelta(minutes=minutes)
    day = moment.date()
    for _ in range(3700):  # ten years of days: a target longer than that is a typo
        window = calendar.window(day)
        if window is not None:
            opens, closes = window
            moment = max(moment, opens)
            if moment < closes:
                if moment + remaining <= closes:
                    return (moment + remaining).astimezone(dt.UTC)
                remaining -= closes - moment
        day += dt.timedelta(days=1)
        moment = dt.datetime.combine(day, dt.time(0), local_zone())
    raise CrmError("服务时限过长，无法按工作时间推算：请检查时限设置。")


def minutes_between(start: dt.datetime, end: dt.datetime, calendar: Calendar | None) -> float:
    """Clock minutes from start to end: wall time, or only the business time in between."""
    if end <= start:
        return 0.0
    if calendar is None:
        return (end - start).total_seconds() / 60
    total = dt.timedelta()
    day = start.astimezone(local_zone()).date()
    last = end.astimezone(local_zone()).date()
    while day <= last:
        window = calendar.window(day)
        if window is not None:
            low, high = max(window[0], start), min(window[1], end)
            if high > low:
                total += high - low
        day += dt.timedelta(days=1)
    return total.total_seconds() / 60


# --- the clocks of one ticket -----------------------------------------------------------------


def clock_start(session: Session, ticket: Ticket) -> dt.datetime:
    """Opening, or the latest reopening: a reopened ticket gets a fresh resolution target."""
    reopened = (
        session.scalar(
            select(func.max(TicketEvent.at)).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.action == "reopen"
            )
        )
        if ticket.id is not None
        else None
    )
    return reopened or ticket.opened_at


def due_times(
    policy: SlaPolicy, start: dt.datetime, paused_minutes: float, calendar: Calendar | None
) -> dict[str, dt.datetime]:
    """The response, resolution and warning due times of a clock started at `start` that has
    waited `paused_minutes` of clock time for the customer (calendar: business hours, or None
    for around the clock)."""
    return {
        "response_due_at": add_minutes(start, policy.response_minutes + paused_minutes, calendar),
        "resolve_due_at": add_minutes(start, policy.resolve_minutes + paused_minutes, calendar),
        "resolve_warn_at": add_minutes(
            start, policy.resolve_minutes * policy.warn_ratio + paused_minutes, calendar
        ),
    }


def calendar_for(session: Session, policy: SlaPolicy) -> Calendar | None:
    return load_calendar(session) if policy.business_hours else None


def start_clock(session: Session, ticket: Ticket, now: dt.datetime) -> None:
    """Set the due times from the policy of the ticket's type and current severity."""
    policy = policy_for(session, ticket.ticket_type, ticket.severity)
    due = due_times(
        policy, clock_start(session, ticket), ticket.paused_minutes or 0.0,
        calendar_for(session, policy),
    )  # fmt: skip
    for name, value in due.items():
        setattr(ticket, name, value)


def reclock(session: Session, ticket: Ticket, now: dt.datetime, keep_earlier: bool = False) -> None:
    """The severity changed: first put on record the breaches that already happened (a new
    severity must not wipe out a breach the customer already suffered), then set the new
    targets. With `keep_earlier` (a repeat call) no due time moves later than it was."""
    check_clocks(session, now, ticket_ids=[ticket.id])
    before = {name: getattr(ticket, name) for name in DUE_COLUMNS}
    start_clock(session, ticket, now)
    if keep_earlier:
        for name, old in before.items():
            new = getattr(ticket, name)
            if old is not None and (new is None or old < new):
                setattr(ticket, name, old)


def pause(ticket: Ticket, now: dt.datetime) -> None:
    ticket.paused_at = now


def resume(session: Session, ticket: Ticket, now: dt.datetime) -> float:
    """Stop the pause: the due times move out by the clock time spent waiting. Returns minutes."""
    if ticket.paused_at is None:
        return 0.0
    policy = policy_for(session, ticket.ticket_type, ticket.severity)
    waited = minutes_between(ticket.paused_at, now, calendar_for(session, policy))
    ticket.paused_minutes = (ticket.paused_minutes or 0.0) + waited
    ticket.paused_at = None
    start_clock(session, ticket, now)
    return waited


def _local(moment: dt.datetime) -> str:
    return moment.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M")


# --- the periodic check -----------------------------------------------------------------------


def _expire(session: Session) -> None:
    """Core UPDATEs bypass the identity map: reload tickets and commitments on next access."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, (Ticket, Commitment)):
            session.expire(obj)


FINDINGS = ("response_breach", "warning", "resolve_breach", "commitment_broken")


@cache
def _due_probe():
    """One indexed look: is any clock finding due at :now? Built once (the check runs every
    few minutes, mostly to find nothing)."""
    t = Ticket.__table__
    c = Commitment.__table__
    now = bindparam("now")
    ticket_due = exists().where(
        t.c.status.in_(RUNNING),
        or_(
            and_(
                t.c.first_response_at.is_(None),
                t.c.response_breached.is_(False),
                t.c.response_due_at <= now,
            ),
            and_(t.c.warned_at.is_(None), t.c.resolve_warn_at <= now, t.c.resolve_due_at > now),
            and_(t.c.resolve_breached.is_(False), t.c.resolve_due_at <= now),
        ),
    )
    promise_due = exists().where(c.c.status == "open", c.c.due_at <= now)
    return select(or_(ticket_due, promise_due))


def check_clocks(
    session: Session, now: dt.datetime | None = None, ticket_ids: list[int] | None = None
) -> dict[str, list[str]]:
    """Warn, record breaches and mark overdue commitments broken, for all running tickets at
    once (set-based UPDATE … RETURNING). Returns the register numbers per finding."""
    now = now or dt.datetime.now(dt.UTC)
    session.flush()
    if ticket_ids is None and not session.scalar(_due_probe(), {"now": now}):
        return {kind: [] for kind in FINDINGS}
    t = Ticket.__table__
    c = Commitment.__table__
    actor = current_user(session).name
    scope = [t.c.status.in_(RUNNING)]
    if ticket_ids is not None:
        scope.append(t.c.id.in_(ticket_ids))
    bump = {"version": t.c.version + 1}
    found: dict[str, list[str]] = {}
    events: list[dict] = []

    def run(kind: str, where: list, values: dict, note) -> None:
        rows = session.execute(
            update(t)
            .where(*scope, *where)
            .values(**values, **bump)
            .returning(t.c.id, t.c.number, t.c.response_due_at, t.c.resolve_due_at)
        ).all()
        found[kind] = sorted(row.number for row in rows)
        events.extend(
            {"ticket_id": row.id, "at": now, "actor": actor, "action": kind, "note": note(row)}
            for row in rows
        )

    run(
        "response_breach",
        [
            t.c.first_response_at.is_(None),
            t.c.response_breached.is_(False),
            t.c.response_due_at <= now,
        ],
        {
            "response_breached": True,
            "breached_at": func.coalesce(t.c.breached_at, t.c.response_due_at),
        },
        lambda row: f"首次响应超时：应于 {_local(row.response_due_at)} 前响应。",
    )
    run(
        "warning",
        [t.c.warned_at.is_(None), t.c.resolve_warn_at <= now, t.c.resolve_due_at > now],
        {"warned_at": now},
        lambda row: f"即将超时预警：须于 {_local(row.resolve_due_at)} 前解决。",
    )
    run(
        "resolve_breach",
        [t.c.resolve_breached.is_(False), t.c.resolve_due_at <= now],
        {
            "resolve_breached": True,
            "breached_at": func.coalesce(t.c.breached_at, t.c.resolve_due_at),
        },
        lambda row: f"解决超时：应于 {_local(row.resolve_due_at)} 前解决。",
    )
    broken_where = [c.c.status == "open", c.c.due_at <= now]
    if ticket_ids is not None:
        broken_where.append(c.c.ticket_id.in_(ticket_ids))
    broken = session.execute(
        update(c)
        .where(*broken_where)
        .values(status="broken")
        .returning(c.c.id, c.c.ticket_id, c.c.what, c.c.promised_by, c.c.due_at)
    ).all()
    numbers = dict(
        session.execute(
            select(t.c.id, t.c.number).where(t.c.id.in_({row.ticket_id for row in broken}))
        ).all()
    )
    found["commitment_broken"] = sorted({numbers[row.ticket_id] for row in broken})
    events.extend(
        {
            "ticket_id": row.ticket_id,
            "at": now,
            "actor": actor,
            "action": "commitment_broken",
            "note": f"承诺未兑现：{row.promised_by} 承诺于 {_local(row.due_at)} 前{row.what}；"
            "须向客户致歉、说明原因并提出补救。",
        }
        for row in broken
    )
    if events:
        session.execute(insert(TicketEvent), events)
    for kind, numbers_found in found.items():
        if numbers_found:
            record(
                session,
                f"sla_{kind}",
                "svc_tickets",
                changes={"numbers": numbers_found},
                detail=f"时限检查于 {_local(now)}：{len(numbers_found)} 张工单",
            )
    _expire(session)
    return found


# --- duty desk listings -----------------------------------------------------------------------


def overdue_filter(query: Select, now: dt.datetime) -> Select:
    """Running tickets past a due time (recorded or not yet checked)."""
    return query.where(
        Ticket.status.in_(RUNNING),
        (Ticket.resolve_due_at <= now)
        | ((Ticket.first_response_at.is_(None)) & (Ticket.response_due_at <= now)),
    )


def at_risk_filter(query: Select, now: dt.datetime) -> Select:
    """Running tickets past the warning point but not yet due."""
    return query.where(
        Ticket.status.in_(RUNNING),
        Ticket.resolve_warn_at <= now,
        Ticket.resolve_due_at > now,
    )
