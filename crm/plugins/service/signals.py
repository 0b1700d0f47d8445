"""Service history that warrants an early warning (客情预警), found by SQL: households who
complained again within the window, and households whose commitments were broken."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.core.chain import ServiceSignal
from crm.core.clock import to_local
from crm.plugins.service.models import Commitment, Ticket
from crm.plugins.service.rules import CUSTOMER

REPEAT_COMPLAINTS = 2


def service_signals(
    session: Session, since: dt.datetime, repeat_at: int = REPEAT_COMPLAINTS
) -> list[ServiceSignal]:
    return repeat_complaints(session, since, repeat_at) + broken_promises(session, since)


def repeat_complaints(
    session: Session, since: dt.datetime, repeat_at: int = REPEAT_COMPLAINTS
) -> list[ServiceSignal]:
    """Households with `repeat_at` or more complaints opened since `since`."""
    # Only a customer complains (tickets coordination opened before it gave tasks do not count).
    complaint = (
        Ticket.ticket_type == "complaint",
        Ticket.origin == CUSTOMER,
        Ticket.opened_at >= since,
    )
    counts = session.execute(
        select(Ticket.household_id, func.count(), func.max(Ticket.opened_at))
        .where(*complaint)
        .group_by(Ticket.household_id)
        .having(func.count() >= repeat_at)
    ).all()
    numbers = _numbers(
        session,
        select(Ticket.household_id, Ticket.number)
        .where(*complaint, Ticket.household_id.in_([h for h, _, _ in counts]))
        .order_by(Ticket.opened_at, Ticket.id),
    )
    day = to_local(since).date().isoformat()
    return [
        ServiceSignal(
            household_id=household_id,
            kind="repeat_complaint",
            count=count,
            reason=f"自 {day} 以来投诉 {count} 次（{'、'.join(numbers[household_id])}），"
            "问题可能未真正解决。",
            last_at=last_at,
            references=numbers[household_id],
        )
        for household_id, count, last_at in counts
    ]


def broken_promises(session: Session, since: dt.datetime) -> list[ServiceSignal]:
    """Households whose commitments were marked broken since `since`."""
    when = func.coalesce(Commitment.settled_at, Commitment.due_at)
    broken = (Commitment.status == "broken", when >= since)
    counts = session.execute(
        select(Ticket.household_id, func.count(Commitment.id), func.max(when))
        .join(Ticket, Ticket.id == Commitment.ticket_id)
        .where(*broken)
        .group_by(Ticket.household_id)
    ).all()
    numbers = _numbers(
        session,
        select(Ticket.household_id, Ticket.number)
        .join(Commitment, Commitment.ticket_id == Ticket.id)
        .where(*broken, Ticket.household_id.in_([h for h, _, _ in counts]))
        .group_by(Ticket.household_id, Ticket.number)
        .order_by(func.max(when)),
    )
    day = to_local(since).date().isoformat()
    return [
        ServiceSignal(
            household_id=household_id,
            kind="broken_promise",
            count=count,
            reason=f"自 {day} 以来有 {count} 项对客户的承诺未兑现"
            f"（{'、'.join(numbers[household_id])}），客户信任受损。",
            last_at=last_at,
            references=numbers[household_id],
        )
        for household_id, count, last_at in counts
    ]


def _numbers(session: Session, query) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    for household_id, number in session.execute(query):
        found[household_id].append(number)
    return found
