"""The complaint record beyond the steps: why the customer complained (causes, recorded at the
feedback step), the options offered to the customer and the one chosen, and the register as
the complaint register keeps it (customer, number, nature, causes, result).

Causes: the seven reasons a complaint breaks out (expectation not met, an old grievance, "no
one listens unless I shout", a broken promise, cold or rude staff, two staff saying different
things, unprofessional handling) and the five sources of dissatisfaction behind them (the
product or service itself, a work error, expectations above what property service can be, the
price of a home that weighs on daily life, customers who are experts and well informed). A
complaint may have several. Satisfaction monitoring learns them through the
`ticket_causes_recorded` hook, analysis through `complaint_counts`.

Options: the handler thinks of several workable options and offers them one after another
(the customer usually takes one by the third); which were offered and which the customer chose
are kept. Once options are on record, the reply to the customer waits for the choice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.core.audit import record
from crm.core.errors import CrmError
from crm.core.models import Household, ServiceRecord
from crm.core.paging import Page, fetch
from crm.core.vocab import COMPLAINT_CAUSES, code_of
from crm.plugins.service.models import Ticket, TicketCause, TicketOption
from crm.plugins.service.rules import CLOSED_STATUSES, PAUSED

CAUSES = COMPLAINT_CAUSES


def cause_choices() -> str:
    return "、".join(f"{code}（{label}）" for code, label in CAUSES.items())


def parse_causes(values: list[str] | tuple[str, ...]) -> list[str]:
    """Cause codes from codes or Chinese labels, in the order given, each once."""
    return list(dict.fromkeys(code_of(CAUSES, value, "投诉原因") for value in values))


def check_causes(ticket: Ticket, causes: list[str]) -> list[str]:
    """A complaint's feedback names at least one cause; other requests name none."""
    if ticket.ticket_type == "complaint":
        if not causes:
            raise CrmError(f"投诉的信息反馈须记录客户投诉的原因（可多选）：{cause_choices()}。")
    elif causes:
        raise CrmError(f"{ticket.number} 不是投诉，不记录投诉原因。")
    return causes


def record_causes(session: Session, ticket: Ticket, causes: list[str]) -> None:
    """Store the causes and tell the other plugins (ticket_causes_recorded)."""
    if not causes:
        return
    for cause in causes:
        session.add(TicketCause(ticket_id=ticket.id, cause=cause))
    session.flush()
    record(session, "causes", "svc_tickets", ticket.id, changes={"causes": [None, causes]})
    session.info["pm"].hook.ticket_causes_recorded(
        session=session, causes={ticket.number: list(causes)}
    )


def causes_of(session: Session, ticket_ids: list[int]) -> dict[int, list[str]]:
    """Ticket id -> its cause codes, in vocabulary order."""
    found: dict[int, list[str]] = {}
    order = list(CAUSES)
    for start in range(0, len(ticket_ids), 500):
        rows = session.execute(
            select(TicketCause.ticket_id, TicketCause.cause).where(
                TicketCause.ticket_id.in_(ticket_ids[start : start + 500])
            )
        )
        for ticket_id, cause in rows:
            found.setdefault(ticket_id, []).append(cause)
    for causes in found.values():
        causes.sort(key=lambda c: order.index(c) if c in order else len(order))
    return found


def cause_text(causes: list[str] | None) -> str:
    return "、".join(CAUSES.get(c, c) for c in causes or [])


# --- options offered --------------------------------------------------------------------------


def options_of(session: Session, ticket_id: int) -> list[TicketOption]:
    return list(
        session.scalars(
            select(TicketOption)
            .where(TicketOption.ticket_id == ticket_id)
            .order_by(TicketOption.seq)
        )
    )


def option_rows(session: Session, ticket_id: int) -> list[dict[str, Any]]:
    return [
        {
            "seq": o.seq,
            "text": o.text,
            "offered_at": o.offered_at,
            "offered_by": o.offered_by,
            "chosen": o.chosen,
            "chosen_at": o.chosen_at,
        }
        for o in options_of(session, ticket_id)
    ]


def _open_for_options(ticket: Ticket, doing: str) -> None:
    if ticket.status in CLOSED_STATUSES or ticket.status == PAUSED:
        raise CrmError(
            f"{ticket.number} 正处于“{ticket.status}”，不能{doing}：方案在处理中（受理到回复之间）提出。"
        )


def offer_options(
    session: Session,
    number: str,
    options: list[str],
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> list[TicketOption]:
    """Record options offered to the customer (numbered after those already offered)."""
    from crm.plugins.service.tickets import _writer, get_ticket, happened, record_event

    actor = _writer(session, "登记提供给客户的方案")
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    _open_for_options(ticket, "再提出方案")
    texts = [o.strip() for o in options if o and o.strip()]
    if not texts:
        raise CrmError("请写明提供给客户的方案（--offer，可多次给出，最好不止一个）。")
    last = session.scalar(
        select(func.coalesce(func.max(TicketOption.seq), 0)).where(
            TicketOption.ticket_id == ticket.id
        )
    )
    made = []
    for offset, text in enumerate(texts, start=1):
        option = TicketOption(
            ticket_id=ticket.id,
            seq=last + offset,
            text=text,
            offered_at=at,
            offered_by=actor,
            chosen=False,
        )
        session.add(option)
        made.append(option)
    session.flush()
    listed = "；".join(f"方案{o.seq}：{o.text}" for o in made)
    record_event(session, ticket, "options", f"向客户提供方案 {listed}", at, now)
    record(
        session,
        "offer",
        "svc_tickets",
        ticket.id,
        changes={"options": [None, [o.text for o in made]]},
    )
    session.flush()
    return made


def choose_option(
    session: Session,
    number: str,
    seq: int,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> TicketOption:
    """The customer chose option `seq` (a later choice replaces an earlier one)."""
    from crm.plugins.service.tickets import _writer, get_ticket, happened, record_event

    _writer(session, "登记客户选定的方案")
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    _open_for_options(ticket, "再选定方案")
    options = options_of(session, ticket.id)
    if not options:
        raise CrmError(
            f"{ticket.number} 还没有提供任何方案：请先用 crm ticket options {ticket.number} "
            "--offer 登记提供给客户的方案。"
        )
    picked = next((o for o in options if o.seq == seq), None)
    if picked is None:
        known = "、".join(str(o.seq) for o in options)
        raise CrmError(f"{ticket.number} 没有方案 {seq}：已提供的方案编号为 {known}。")
    before = next((o.seq for o in options if o.chosen), None)
    for option in options:
        option.chosen = option is picked
        option.chosen_at = at if option is picked else None
    record_event(
        session, ticket, "option_chosen", f"客户选定方案{picked.seq}：{picked.text}", at, now
    )
    record(session, "choose", "svc_tickets", ticket.id, changes={"option": [before, picked.seq]})
    session.flush()
    return picked


def check_choice_before_reply(session: Session, ticket: Ticket) -> None:
    """Options on record and none chosen: the reply waits for the customer's choice."""
    options = options_of(session, ticket.id)
    if options and not any(o.chosen for o in options):
        raise CrmError(
            f"{ticket.number} 已向客户提供 {len(options)} 个方案，客户还没有选定：请先用 "
            f"crm ticket choose {ticket.number} 编号 登记客户的选择，再回复。"
        )


# --- the register -------------------------------------------------------------------------------


def register_rows(
    session: Session,
    kind: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int | None = 200,
    offset: int = 0,
) -> Page:
    """The service register as the complaint register keeps it, newest first: number,
    customer, nature (type, severity and category of a ticket, and its summary), causes and
    result. Legacy records show what they hold."""
    query = (
        select(ServiceRecord, Household.code, Household.name, Ticket)
        .join(Household, Household.id == ServiceRecord.household_id)
        .outerjoin(Ticket, Ticket.number == ServiceRecord.record_no)
    )
    if kind:
        from crm.core.vocab import SERVICE_KINDS

        query = query.where(ServiceRecord.kind == code_of(SERVICE_KINDS, kind, "登记类型"))
    if since is not None:
        query = query.where(ServiceRecord.opened_at >= since)
    if until is not None:
        query = query.where(ServiceRecord.opened_at < until)
    found = fetch(
        session,
        query.order_by(ServiceRecord.opened_at.desc(), ServiceRecord.id.desc()),
        limit,
        offset,
    )
    causes = causes_of(session, [t.id for *_, t in found if t is not None])
    return found.map(lambda row: _register_row(*row, causes))


def _register_row(entry, code, name, ticket, causes) -> dict[str, Any]:
    return {
        "number": entry.record_no,
        "household": code,
        "household_name": name,
        "kind": entry.kind,
        "severity": ticket.severity if ticket is not None else None,
        "category": ticket.category if ticket is not None else None,
        "summary": entry.summary,
        "causes": causes.get(ticket.id, []) if ticket is not None else [],
        "status": entry.status,
        "opened_at": entry.opened_at,
        "closed_at": entry.closed_at,
        "result": entry.result,
    }
