"""Each ticket's entry in the core service register (登记簿, service_records): customer,
register number, nature (summary) and result, open or closed.

The register is what the tracking card, `crm export service`, the KPIs and the analysis
features read, together with the legacy records imported into it, so every view counts each
request once. Service handling keeps its entries (managed_by 'service') in step whenever a
ticket is opened or moves; an import never changes them. The live state of a ticket (its
step, due time and owner) is read through the `service_record_states` hook.

Tickets coordination opened before it gave tasks instead (origin 'coordination') are not
customer requests and have no entry.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.core.models import ServiceRecord, utcnow
from crm.plugins.service.models import Staff, Ticket
from crm.plugins.service.rules import CLOSED_STATUSES, STATUSES

MANAGED_BY = "service"
CHUNK = 500


def result_text(result: str | None, corrective_action: str | None) -> str | None:
    """The register's 处理结果: what the customer confirmed, then the corrective action."""
    parts = [result, f"纠正措施：{corrective_action}" if corrective_action else None]
    return "；".join(part for part in parts if part) or None


def _upsert(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = ServiceRecord.__table__
    statement = insert(table)
    changing = ("status", "closed_at", "result", "summary", "unit_id", "updated_at")
    return statement.on_conflict_do_update(
        index_elements=["record_no"],
        set_={name: statement.excluded[name] for name in changing},
        # A legacy record that happens to hold the number is never overwritten.
        where=table.c.managed_by == MANAGED_BY,
    )


def entry(ticket: Ticket, now) -> dict:
    """The register row of one ticket (a Ticket or a row with the same attributes)."""
    return {
        "record_no": ticket.number,
        "household_id": ticket.household_id,
        "unit_id": ticket.unit_id,
        "kind": ticket.ticket_type,
        "channel": ticket.channel,
        "status": "closed" if ticket.status in CLOSED_STATUSES else "open",
        "opened_at": ticket.opened_at,
        "closed_at": ticket.closed_at if ticket.status in CLOSED_STATUSES else None,
        "summary": ticket.summary,
        "result": result_text(ticket.result, ticket.corrective_action),
        "managed_by": MANAGED_BY,
        "created_at": now,
        "updated_at": now,
    }


def write_entries(session: Session, rows: list[dict]) -> None:
    """Insert or update register rows made by `entry` (the demo writes its tickets' at once)."""
    for start in range(0, len(rows), CHUNK):
        session.execute(_upsert(session), rows[start : start + CHUNK])


def sync(session: Session, tickets: Iterable[Ticket], now=None) -> None:
    """Bring the register entries of these tickets in line with their current state."""
    now = now or utcnow()
    session.flush()
    rows = [entry(ticket, now) for ticket in tickets if ticket.origin != "coordination"]
    if rows:
        write_entries(session, rows)


def record_states(session: Session, record_nos: list[str]) -> dict[str, dict]:
    """For the tracking card: register number -> the ticket's step, due time and owner, for
    the numbers that are tickets (the `service_record_states` hook): the step's code and,
    for the card, which cannot know this plugin's vocabulary, its label."""
    found: dict[str, dict] = {}
    for start in range(0, len(record_nos), CHUNK):
        rows = session.execute(
            select(Ticket.number, Ticket.status, Ticket.resolve_due_at, Staff.name)
            .outerjoin(Staff, Staff.id == Ticket.owner_id)
            .where(Ticket.number.in_(record_nos[start : start + CHUNK]))
        )
        for number, status, due, owner in rows:
            found[number] = {
                "step": status,
                "step_label": STATUSES.get(status, status),
                "due_at": due,
                "owner": owner,
            }
    return found
