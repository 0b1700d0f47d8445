"""Tickets (工单): complaints, repairs, suggestions and enquiries under one register number,
moved through their steps by the flows of rules.py (the eight steps of a complaint, the
shorter flows of repairs, suggestions and enquiries, waiting for the customer).

Every step records when it happened and when it was typed in (`at`, `now`): a call taken at
08:05 and typed in at 08:40 counts from 08:05. Every move keeps the ticket's entry in the core
service register in step (register.py). No ticket reaches its last step with its remedial,
corrective or repair work open, and a customer not satisfied at the revisit is followed until
satisfied: the ticket is reopened unless a manager records why not.

Library functions take the session and an explicit `now`, never commit, and refuse what is not
allowed with one sentence naming what is.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Integer, String, case, cast, func, literal, or_, select, update
from sqlalchemy.orm import Session, selectinload

from crm.core.audit import current_user, record
from crm.core.chain import Revisit, TicketFacts
from crm.core.clock import to_local, when_done
from crm.core.errors import CrmError, NotFound, PermissionDenied
from crm.core.households import get_household
from crm.core.identity import halfwidth
from crm.core.models import (
    Building,
    Household,
    Project,
    Purchase,
    ServiceRecord,
    Unit,
    utcnow,
)
from crm.core.paging import Page, between, fetch
from crm.core.settings import IntSetting
from crm.core.vocab import code_of
from crm.plugins.service import register, rules, sla
from crm.plugins.service.models import (
    Commitment,
    Escalation,
    GroupComplaint,
    Staff,
    Team,
    Ticket,
    TicketEvent,
    WorkOrder,
)
from crm.plugins.service.rules import (
    ACTIONS,
    CATEGORIES,
    CHANNELS,
    CLOSED_STATUSES,
    CUSTOMER,
    EXPECTATIONS,
    ORIGINS,
    PAUSED,
    PREFIXES,
    RESUME,
    RUNNING,
    SEVERITIES,
    SIMPLE_ACTIONS,
    STATUSES,
    TICKET_TYPES,
)

DISSATISFIED_KEY = "service.dissatisfied_csat"
DISSATISFIED = IntSetting(
    DISSATISFIED_KEY, rules.DISSATISFIED_CSAT, "回访满意度不超过几分算不满意", low=1, high=4
)
# A promise names a person ("I will …"), never a collective.
COLLECTIVE_WORDS = ("我们", "公司", "中心", "部门", "团队", "物业", "大家", "we", "us", "team")
# Serialises register-number allocation on PostgreSQL (SQLite serialises writers itself).
NUMBER_LOCK = 0x5E7C_0001


def _label(vocabulary: dict[str, str], code: str | None) -> str:
    return "" if code is None else vocabulary.get(code, code)


def _local(moment: dt.datetime | None) -> str:
    return to_local(moment).strftime("%Y-%m-%d %H:%M") if moment else ""


def _writer(session: Session, action: str) -> str:
    user = current_user(session)
    user.require("ticket.handle", action)
    return user.name


def get_ticket(session: Session, number: str) -> Ticket:
    ticket = session.scalar(select(Ticket).where(Ticket.number == halfwidth(number).strip()))
    if ticket is None:
        raise NotFound(f"找不到登记号为“{number}”的工单：请用 crm ticket list 查看登记号。")
    return ticket


def facts(ticket: Ticket) -> TicketFacts:
    """What other plugins may know of the ticket."""
    return TicketFacts(
        number=ticket.number,
        ticket_type=ticket.ticket_type,
        household_id=ticket.household_id,
        project_id=ticket.project_id,
        team=ticket.team.code if ticket.team else None,
        category=ticket.category,
        severity=ticket.severity,
        closed_at=ticket.closed_at,
    )


def dissatisfied_csat(session: Session) -> int:
    """The CSAT at or below which a revisit means the customer is not satisfied (setting
    service.dissatisfied_csat, default rules.DISSATISFIED_CSAT)."""
    return DISSATISFIED.read(session)


# --- when things happened ---------------------------------------------------------------------


def _last_step_at(session: Session, ticket: Ticket) -> dt.datetime:
    """When the ticket entered its current step (its opening if it has not moved yet)."""
    moved = session.scalar(
        select(func.max(TicketEvent.at)).where(
            TicketEvent.ticket_id == ticket.id,
            TicketEvent.to_status.is_not(None),
            or_(
                TicketEvent.from_status.is_(None), TicketEvent.from_status != TicketEvent.to_status
            ),
        )
    )
    return moved or ticket.opened_at


def happened(
    session: Session, ticket: Ticket, now: dt.datetime | None, at: dt.datetime | None
) -> tuple[dt.datetime, dt.datetime]:
    """(now, at): the time it is recorded and the time it happened, for something done on a
    ticket. `at` is given when staff type in later what was done earlier; it may not be in the
    future nor before the ticket reached its current step (steps stay in order)."""
    now = now or utcnow()
    if at is None:
        return now, now
    return now, when_done(at, now, _last_step_at(session, ticket), "这张工单进入当前步骤的时间")


def _event(
    session: Session,
    ticket: Ticket,
    action: str,
    note: str | None,
    at: dt.datetime,
    entered: dt.datetime | None,
    before: str | None,
    after: str | None,
) -> TicketEvent:
    event = TicketEvent(
        ticket_id=ticket.id,
        at=at,
        entered_at=entered or at,
        actor=current_user(session).name,
        action=action,
        from_status=before,
        to_status=after,
        note=(note or "").strip() or None,
    )
    session.add(event)
    return event


def record_event(
    session: Session,
    ticket: Ticket,
    action: str,
    note: str,
    at: dt.datetime,
    entered: dt.datetime | None = None,
) -> TicketEvent:
    """A non-transition event on the ticket (the status stays as it is): it happened `at` and
    was typed in `entered` (the same moment unless given)."""
    return _event(session, ticket, action, note, at, entered, ticket.status, ticket.status)


# --- the state machine ------------------------------------------------------------------------


def allowed_actions(ticket: Ticket) -> list[str]:
    return rules.allowed_actions(ticket.ticket_type, ticket.status)


def _refusal(ticket: Ticket, action: str) -> str:
    kind = _label(TICKET_TYPES, ticket.ticket_type)
    here = _label(STATUSES, ticket.status)
    doing = f"“{ACTIONS.get(action, action)}”（{action}）"
    allowed = allowed_actions(ticket)
    if allowed:
        nexts = "、".join(f"“{ACTIONS[a]}”（{a}）" for a in allowed)
        return f"{kind} {ticket.number} 正处于“{here}”，不能{doing}；此时只能{nexts}。"
    return f"{kind} {ticket.number} 已到“{here}”，流程已结束，不能再{doing}。"


def _require_step(ticket: Ticket, action: str) -> None:
    if rules.next_status(ticket.ticket_type, ticket.status, action) is None:
        raise CrmError(_refusal(ticket, action))


def _status_before_pause(session: Session, ticket: Ticket) -> str:
    left = session.scalar(
        select(TicketEvent.from_status)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.to_status == PAUSED)
        .order_by(TicketEvent.id.desc())
        .limit(1)
    )
    return left or "accepted"


def open_work(session: Session, ticket: Ticket, kinds: tuple[str, ...]) -> list[WorkOrder]:
    return list(
        session.scalars(
            select(WorkOrder)
            .where(
                WorkOrder.ticket_id == ticket.id,
                WorkOrder.kind.in_(kinds),
                WorkOrder.status == "open",
            )
            .order_by(WorkOrder.id)
        )
    )


def _check_last_step(session: Session, ticket: Ticket, target: str) -> None:
    """No ticket reaches its last step with its remedial, corrective or repair work open."""
    if target != rules.LAST_STEP[ticket.ticket_type]:
        return
    pending = open_work(session, ticket, rules.BLOCKS_LAST_STEP)
    if pending:
        listed = "、".join(f"{w.number}（{rules.WORK_KINDS.get(w.kind, w.kind)}）" for w in pending)
        raise CrmError(
            f"{ticket.number} 还有未完成的派工单 {listed}：完成后（crm workorder done）"
            f"才能进入最后一步“{STATUSES[target]}”。"
        )


def transition(
    session: Session,
    ticket: Ticket,
    action: str,
    at: dt.datetime,
    note: str | None,
    entered: dt.datetime | None = None,
) -> TicketEvent:
    """Move the ticket by the flow, record who, when (done and typed in), from, to and the
    note, and bring its register entry in line."""
    _require_step(ticket, action)
    target = rules.next_status(ticket.ticket_type, ticket.status, action)
    if target == RESUME:
        target = _status_before_pause(session, ticket)
    _check_last_step(session, ticket, target)
    if ticket.status in RUNNING and target not in RUNNING:
        # The clocks stop here: a time limit that passed since the last periodic check is
        # put on record now, or a request closed late between two checks would look on time.
        sla.check_clocks(session, at, ticket_ids=[ticket.id])
    before = ticket.status
    ticket.status = target
    # Any step taken on the request is the first response to the customer.
    if ticket.first_response_at is None:
        ticket.first_response_at = at
    event = _event(session, ticket, action, note, at, entered, before, target)
    session.flush()
    register.sync(session, [ticket], entered or at)
    return event


# --- intake -----------------------------------------------------------------------------------


def _household_unit(session: Session, household: Household, spec: str) -> Unit:
    """`项目/楼栋/房号`, or a bare unit code among the units the household bought."""
    spec = halfwidth(spec).strip()
    parts = [p.strip() for p in spec.replace("／", "/").split("/")]
    if len(parts) == 3:
        project_name, building_name, code = parts
        unit = session.scalar(
            select(Unit)
            .join(Building, Unit.building_id == Building.id)
            .join(Project, Building.project_id == Project.id)
            .where(
                Project.name == project_name,
                Building.name == building_name,
                Unit.code == code.upper(),
            )
        )
        if unit is None:
            raise NotFound(f"找不到房号“{spec}”：请核对项目名、楼栋和房号。")
        return unit
    if len(parts) != 1:
        raise CrmError(f"房号“{spec}”的写法不对：请写成 项目/楼栋/房号，或只写本客户名下的房号。")
    units = session.scalars(
        select(Unit)
        .join(Purchase, Purchase.unit_id == Unit.id)
        .where(Purchase.household_id == household.id, Unit.code == spec.upper())
        .distinct()
    ).all()
    if len(units) == 1:
        return units[0]
    if not units:
        raise CrmError(f"客户 {household.code} 名下没有房号“{spec}”：请写成 项目/楼栋/房号。")
    raise CrmError(f"客户 {household.code} 名下有多套房号为“{spec}”：请写成 项目/楼栋/房号。")


def last_sequence(session: Session, column, head: str):
    """The highest sequence number of the day `head` among the values of `column`, as SQL
    (0 when none). A legacy value with letters after the head counts as none."""
    tail = func.substr(column, len(head) + 1)
    if session.get_bind().dialect.name == "postgresql":
        # PostgreSQL refuses to cast letters; a regular expression takes the digits or NULL.
        tail = func.substring(column, f"^{head}([0-9]+)$")
    return (
        select(func.coalesce(func.max(cast(tail, Integer)), 0))
        .where(column.like(f"{head}%"))
        .scalar_subquery()
    )


def _number_expression(session: Session, ticket_type: str, at: dt.datetime):
    """The next register number, computed inside the INSERT: SQLite runs it under the write
    lock and PostgreSQL under an advisory lock, so two agents never get the same number. A
    number an imported legacy record already holds in the register is skipped."""
    head = rules.number_head(PREFIXES[ticket_type], at)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(NUMBER_LOCK)))
    prev = Ticket.__table__.alias("prev")
    # The larger of two values: max() takes several arguments on SQLite, greatest() elsewhere.
    larger = func.max if session.get_bind().dialect.name == "sqlite" else func.greatest
    following = (
        larger(
            last_sequence(session, prev.c.number, head),
            last_sequence(session, ServiceRecord.__table__.c.record_no, head),
        )
        + 1
    )
    # At least four digits (rules.number): 10000 + n with its leading 1 dropped reads the same
    # on both databases; from the 10,000th ticket of a day on, the number simply grows a digit.
    return literal(head, String) + case(
        (following < 10000, func.substr(cast(following + 10000, String), 2)),
        else_=cast(following, String),
    )


def open_ticket(
    session: Session,
    household_code: str,
    ticket_type: str,
    channel: str,
    summary: str,
    unit: str | None = None,
    reported_by: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
    origin: str = CUSTOMER,
) -> Ticket:
    """Register a request (受理) under a new number and start its SLA clocks from the time it
    came in (`at`, when typed in later). Only a customer complains: a complaint's origin is
    always the customer."""
    actor = _writer(session, "登记工单")
    now = now or utcnow()
    at = when_done(at, now)
    ticket_type = code_of(TICKET_TYPES, ticket_type, "工单类型")
    channel = code_of(CHANNELS, channel, "渠道")
    origin = code_of(ORIGINS, origin, "来源")
    if ticket_type == "complaint" and origin != CUSTOMER:
        raise CrmError(
            f"投诉只能来自客户本人，不能以“{ORIGINS[origin]}”的名义登记：系统或员工发现的问题"
            "请登记为报修或建议。"
        )
    if not summary or not summary.strip():
        raise CrmError("请写明客户反映的问题（摘要）。")
    household = get_household(session, household_code)
    found = _household_unit(session, household, unit) if unit else None
    building = session.get(Building, found.building_id) if found else None
    ticket = Ticket(
        number=_number_expression(session, ticket_type, at),
        ticket_type=ticket_type,
        channel=channel,
        origin=origin,
        household_id=household.id,
        unit_id=found.id if found else None,
        project_id=building.project_id if building else household.project_id,
        building_id=building.id if building else None,
        summary=summary.strip(),
        status="accepted",
        severity="general",
        expectations=[],
        escalation_level=1,
        reported_by=(reported_by or "").strip() or actor,
        opened_at=at,
        paused_minutes=0.0,
        severity_raises=0,
        created_at=now,
        updated_at=now,
    )
    sla.start_clock(session, ticket, at)
    session.add(ticket)
    session.flush()
    session.refresh(ticket, ["number"])
    _event(
        session,
        ticket,
        "open",
        f"{_label(CHANNELS, channel)}受理：{ticket.summary}",
        at,
        now,
        None,
        "accepted",
    )
    session.flush()
    register.sync(session, [ticket], now)
    return ticket


# --- the steps --------------------------------------------------------------------------------


def step(
    session: Session,
    number: str,
    action: str,
    note: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Ticket:
    """One of the steps that carry only a note: confirm, investigate, pause, resume, reopen."""
    if action not in SIMPLE_ACTIONS:
        if action in ACTIONS:
            raise CrmError(
                f"“{ACTIONS[action]}”需要更多信息：请用 crm ticket {action} 并给出所需选项。"
            )
        choices = "、".join(f"{a}（{ACTIONS[a]}）" for a in SIMPLE_ACTIONS)
        raise CrmError(f"不认识的步骤“{action}”：可选 {choices}。")
    handlers = {"pause": pause, "resume": resume, "reopen": reopen}
    if action in handlers:
        return handlers[action](session, number, note=note, now=now, at=at)
    _writer(session, ACTIONS[action])
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    transition(session, ticket, action, at, note, now)
    return ticket


def assess(
    session: Session,
    number: str,
    severity: str,
    category: str,
    expectations: list[str],
    note: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Ticket:
    """评估: severity, category and what the customer expects; then dispatch by category and
    escalate a major ticket straight to the manager. The classifier's suggestion (when a model
    is trained) is recorded with the event next to the staff's choice, which always wins."""
    from crm.plugins.service import classification, dispatch, escalation

    _writer(session, "评估工单")
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    _require_step(ticket, "assess")
    severity = code_of(SEVERITIES, severity, "严重程度")
    category = code_of(CATEGORIES, category, "问题类别")
    wanted = list(dict.fromkeys(code_of(EXPECTATIONS, e, "客户期望") for e in expectations))
    if ticket.ticket_type == "complaint" and not wanted:
        choices = "、".join(f"{c}（{z}）" for c, z in EXPECTATIONS.items())
        raise CrmError(f"投诉评估须记录客户的期望（可多选）：{choices}。")
    summary = (
        f"严重程度 {SEVERITIES[severity]}，类别 {CATEGORIES[category]}"
        + (f"，客户期望 {'、'.join(EXPECTATIONS[e] for e in wanted)}" if wanted else "")
        + (f"。{note.strip()}" if note and note.strip() else "")
    )
    suggestion = classification.ask(session, ticket.summary, ticket.ticket_type)
    summary += classification.assess_note(suggestion, category, severity)
    event = transition(session, ticket, "assess", at, summary, now)
    if suggestion is not None:  # left SQL NULL otherwise (a JSON column would store 'null')
        event.details = classification.assess_details(suggestion, category, severity)
    ticket.category = category
    ticket.expectations = wanted
    if severity != ticket.severity:
        ticket.severity = severity
        sla.reclock(session, ticket, at)
    dispatch.assign_ticket(session, ticket, at)
    escalation.escalate_ticket(session, ticket, at)
    session.flush()
    return ticket


def _check_promiser(name: str) -> str:
    name = (name or "").strip()
    lowered = name.lower()
    if not name or any(word in lowered for word in COLLECTIVE_WORDS):
        raise CrmError(
            "承诺须由具体的一个人作出（“我会……”，而不是“我们会……”）：请写明承诺人的姓名。"
        )
    return name


def _open_commitment(ticket: Ticket) -> Commitment | None:
    return next((c for c in reversed(ticket.commitments) if c.status == "open"), None)


def _unsettled_broken(ticket: Ticket) -> Commitment | None:
    return next(
        (c for c in reversed(ticket.commitments) if c.status == "broken" and c.settled_at is None),
        None,
    )


def _promise(
    session: Session,
    ticket: Ticket,
    what: str,
    due_at: dt.datetime,
    promised_by: str,
    at: dt.datetime,
    entered: dt.datetime,
) -> Commitment:
    broken = _unsettled_broken(ticket)
    if broken is not None:
        raise CrmError(
            f"{ticket.number} 有一项承诺未兑现（{broken.promised_by}：{broken.what}）：须先向客户致歉、"
            "说明原因并提出补救（crm ticket settle），才能作出新的承诺。"
        )
    current = _open_commitment(ticket)
    if current is not None:
        raise CrmError(
            f"{ticket.number} 还有一项承诺未了结（{current.promised_by}：{current.what}，"
            f"{_local(current.due_at)} 前）：兑现后用 crm ticket keep 登记，做不到时用 "
            "crm ticket settle 致歉并补救，再作新的承诺。"
        )
    if not what or not what.strip():
        raise CrmError("请写明承诺做什么（如“明天 12:00 前疏通地漏并上门确认”）。")
    if due_at <= at:
        raise CrmError("承诺的完成时间必须在将来（晚于作出承诺的时间）。")
    commitment = Commitment(
        ticket=ticket,
        what=what.strip(),
        due_at=due_at,
        promised_by=_check_promiser(promised_by),
        status="open",
        created_at=entered,
        updated_at=entered,
    )
    session.add(commitment)
    session.flush()
    record_event(
        session,
        ticket,
        "promise",
        f"{commitment.promised_by}承诺：我会在 {_local(due_at)} 前{commitment.what}",
        at,
        entered,
    )
    return commitment


def reply(
    session: Session,
    number: str,
    what: str | None = None,
    due_at: dt.datetime | None = None,
    promised_by: str | None = None,
    note: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Ticket:
    """回复: tell the customer what will be done; a complaint's reply is a commitment (what, by
    when, by whom)."""
    _writer(session, "回复客户")
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    _require_step(ticket, "reply")
    from crm.plugins.service.complaint_record import check_choice_before_reply

    check_choice_before_reply(session, ticket)
    promising = what is not None or due_at is not None or promised_by is not None
    if ticket.ticket_type == "complaint" or promising:
        if not (what and due_at and promised_by):
            raise CrmError(
                "投诉的回复须是一项承诺：写明做什么、何时前完成、由谁负责（--what --due --by）。"
            )
        _promise(session, ticket, what, due_at, promised_by, at, now)
    transition(session, ticket, "reply", at, note, now)
    ticket.replied_at = at
    return ticket


def add_commitment(
    session: Session,
    number: str,
    what: str,
    due_at: dt.datetime,
    promised_by: str,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Commitment:
    """A further promise on an open ticket (after a broken one has been settled)."""
    _writer(session, "登记承诺")
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    if ticket.status in CLOSED_STATUSES:
        raise CrmError(
            f"{ticket.number} 已关闭，不能再作承诺：客户仍不满意时请先重新处理（reopen）。"
        )
    return _promise(session, ticket, what, due_at, promised_by, at, now)


def keep_commitment(
    session: Session, number: str, now: dt.datetime | None = None, at: dt.datetime | None = None
) -> Commitment:
    """The open promise was kept."""
    _writer(session, "登记承诺兑现")
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    current = _open_commitment(ticket)
    if current is None:
        raise CrmError(f"{ticket.number} 没有待兑现的承诺。")
    if current.due_at < at:
        raise CrmError(
            f"承诺“{current.what}”的期限 {_local(current.due_at)} 已过：逾期即失信，请用 "
            "crm ticket settle 致歉、说明原因并提出补救。"
        )
    current.status = "kept"
    current.settled_at = at
    record_event(session, ticket, "commitment_kept", f"承诺已兑现：{current.what}", at, now)
    session.flush()
    return current


def settle_broken_commitment(
    session: Session,
    number: str,
    apology: str,
    reason: str,
    remedy: str,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Commitment:
    """A promise that cannot be (or was not) kept: apologise, say why, offer a remedy. Marks an
    open promise broken too, so a promise known to fail is settled at once."""
    _writer(session, "处理失信承诺")
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    target = _unsettled_broken(ticket) or _open_commitment(ticket)
    if target is None:
        raise CrmError(f"{ticket.number} 没有未兑现的承诺需要处理。")
    missing = [
        label
        for label, text in (("致歉", apology), ("原因", reason), ("补救措施", remedy))
        if not (text and text.strip())
    ]
    if missing:
        raise CrmError(
            f"承诺未能兑现时须向客户致歉、说明原因并提出补救：还缺{'、'.join(missing)}。"
        )
    target.status = "broken"
    target.apology, target.reason, target.remedy = apology.strip(), reason.strip(), remedy.strip()
    target.settled_at = at
    record_event(
        session,
        ticket,
        "commitment_settled",
        f"承诺“{target.what}”未能兑现：致歉——{target.apology}；原因——{target.reason}；"
        f"补救——{target.remedy}",
        at,
        now,
    )
    session.flush()
    return target


def close_after_repair(
    session: Session, ticket: Ticket, result: str, at: dt.datetime, now: dt.datetime
) -> Ticket:
    """A repair ticket whose last repair job is done closes with it: the customer confirmed
    the repair on site (and signed the fee record of paid work), which is the result."""
    ticket.customer_confirmed = True
    ticket.closed_at = at
    ticket.result = result
    transition(session, ticket, "close", at, f"维修完工，业主现场确认：{result}", now)
    return ticket


def close(
    session: Session,
    number: str,
    customer_confirmed: bool,
    note: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Ticket:
    """跟踪关闭: only with the customer's confirmation and no promise left hanging. The note
    (what the customer confirmed) is the result on the register."""
    _writer(session, "关闭工单")
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    _require_step(ticket, "close")
    if not customer_confirmed:
        raise CrmError(
            f"关闭 {ticket.number} 须经客户确认问题已解决：确认后请加 --confirmed 再关闭。"
        )
    broken = _unsettled_broken(ticket)
    current = _open_commitment(ticket)
    if broken is not None or (current is not None and current.due_at < at):
        late = broken or current
        raise CrmError(
            f"承诺“{late.what}”未能按时兑现：须先向客户致歉、说明原因并提出补救"
            "（crm ticket settle），再关闭。"
        )
    if current is not None:
        current.status = "kept"
        current.settled_at = at
    result = (note or "").strip() or "客户已确认问题解决"
    ticket.customer_confirmed = True
    ticket.closed_at = at
    ticket.result = result
    transition(session, ticket, "close", at, result, now)
    return ticket


def _check_score(value: int | None, low: int, high: int, what: str) -> None:
    if value is not None and not low <= value <= high:
        raise CrmError(f"{what}须在 {low} 到 {high} 之间。")


def revisit(
    session: Session,
    number: str,
    csat: int,
    nps: int | None = None,
    aspects: dict[str, tuple[int, int]] | None = None,
    comment: str | None = None,
    reopen_ticket: bool = False,
    override: str | None = None,
    channel: str = "phone",
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Ticket:
    """回访: the customer's answers go to satisfaction monitoring (tickets_revisited hook). A
    customer not satisfied (CSAT at or below service.dissatisfied_csat) is followed until
    satisfied: the ticket is reopened, unless a manager records why it need not be
    (`override`, the reason). A repair's revisit also finishes its revisit work order."""
    actor = _writer(session, "回访")
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    _require_step(ticket, "revisit")
    _check_score(csat, 1, 5, "满意度（CSAT）")
    _check_score(nps, 0, 10, "推荐意愿（NPS）")
    channel = code_of(CHANNELS, channel, "回访渠道")
    aspects = dict(aspects or {})
    for aspect, pair in aspects.items():
        if len(pair) != 2:
            raise CrmError(f"方面“{aspect}”须给出期望和体验两个分数。")
        _check_score(pair[0], 1, 10, f"“{aspect}”的期望分")
        _check_score(pair[1], 1, 10, f"“{aspect}”的体验分")
    threshold = dissatisfied_csat(session)
    unhappy = csat <= threshold
    override = (override or "").strip() or None
    if reopen_ticket and not unhappy:
        raise CrmError(
            f"满意度 {csat} 分不算不满意：只有 {threshold} 分及以下的回访才能重新处理工单。"
        )
    if override is not None and not unhappy:
        raise CrmError(f"满意度 {csat} 分不算不满意，无需经理确认不再处理。")
    if reopen_ticket and override is not None:
        raise CrmError("重新处理与经理确认不再处理只能二选一。")
    if unhappy and not reopen_ticket:
        if override is None:
            raise CrmError(
                f"客户不满意（满意度 {csat} 分，不高于 {threshold} 分）：须跟进到客户满意为止——"
                "请加 --reopen 重新处理；确属无法再处理的，由经理加 --override 写明原因。"
            )
        current_user(session).require("ticket.override", "确认客户不满意的工单不再处理")
    note = f"满意度 {csat}" + (f"，推荐意愿 {nps}" if nps is not None else "")
    if comment and comment.strip():
        note += f"；客户意见：{comment.strip()}"
    _finish_revisit_work(session, ticket, note, at, now)
    transition(session, ticket, "revisit", at, note, now)
    ticket.revisited_at = at
    if override is not None:
        record_event(
            session, ticket, "override", f"客户不满意，经理确认不再处理：{override}", at, now
        )
    session.flush()
    session.info["pm"].hook.tickets_revisited(
        session=session,
        revisits=[
            Revisit(
                ticket=facts(ticket),
                at=at,
                csat=csat,
                nps=nps,
                aspects=aspects,
                comment=(comment or "").strip() or None,
                actor=actor,
                channel=channel,
                entered_at=now,
            )
        ],
    )
    if reopen_ticket:
        reopen(session, number, note=f"回访不满意（满意度 {csat}）", now=now, at=at)
    return ticket


def _finish_revisit_work(
    session: Session, ticket: Ticket, result: str, at: dt.datetime, now: dt.datetime
) -> None:
    """The revisit answers the open revisit work order (a repair's 100% phone revisit)."""
    from crm.plugins.service.dispatch import finish_work_order

    for order in open_work(session, ticket, ("revisit",)):
        finish_work_order(session, order, f"回访完成：{result}", at, now)


def reopen(
    session: Session,
    number: str,
    note: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Ticket:
    """重新处理: back to investigating with a fresh resolution target, one level up."""
    from crm.plugins.service import escalation

    _writer(session, "重新处理工单")
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    _require_step(ticket, "reopen")
    if not note or not note.strip():
        raise CrmError("重新处理须写明原因（客户哪里仍不满意）。")
    ticket.closed_at = None
    ticket.customer_confirmed = False
    ticket.warned_at = None
    ticket.paused_minutes = 0.0
    transition(session, ticket, "reopen", at, note, now)
    ticket.reopen_count = (ticket.reopen_count or 0) + 1
    session.flush()
    sla.start_clock(session, ticket, at)
    escalation.escalate_ticket(session, ticket, at)
    return ticket


def feedback(
    session: Session,
    number: str,
    root_cause: str,
    corrective_action: str,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
    causes: list[str] | tuple[str, ...] = (),
) -> Ticket:
    """信息反馈: the root cause and the corrective action that prevents it happening again,
    and for a complaint why the customer complained (causes, several allowed)."""
    from crm.plugins.service import complaint_record

    _writer(session, "登记信息反馈")
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    _require_step(ticket, "feedback")
    missing = [
        label
        for label, text in (("根本原因", root_cause), ("纠正措施", corrective_action))
        if not (text and text.strip())
    ]
    if missing:
        raise CrmError(f"信息反馈须写明根本原因和防止再发生的纠正措施：还缺{'、'.join(missing)}。")
    causes = complaint_record.check_causes(ticket, complaint_record.parse_causes(causes))
    ticket.root_cause = root_cause.strip()
    ticket.corrective_action = corrective_action.strip()
    transition(
        session,
        ticket,
        "feedback",
        at,
        f"根本原因：{ticket.root_cause}；纠正措施：{ticket.corrective_action}"
        + (f"；投诉原因：{complaint_record.cause_text(causes)}" if causes else ""),
        now,
    )
    ticket.completed_at = at
    complaint_record.record_causes(session, ticket, causes)
    return ticket


def pause(
    session: Session,
    number: str,
    note: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Ticket:
    """等待客户: the SLA clocks stop until the ticket resumes."""
    _writer(session, "暂停等待客户")
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    _require_step(ticket, "pause")
    if not note or not note.strip():
        raise CrmError("等待客户须写明在等什么（如“业主出差，约定 5 月 3 日上门”）。")
    transition(session, ticket, "pause", at, note, now)
    sla.pause(ticket, at)
    return ticket


def resume(
    session: Session,
    number: str,
    note: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Ticket:
    """Back to the step the ticket left; the due times move out by the time waited."""
    _writer(session, "恢复处理")
    ticket = get_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    _require_step(ticket, "resume")
    waited = sla.resume(session, ticket, at)
    transition(
        session,
        ticket,
        "resume",
        at,
        (note or "").strip() + f"（等待 {waited:.0f} 分钟，时限顺延）",
        now,
    )
    return ticket


def record_contact(
    session: Session,
    number: str,
    channel: str,
    note: str,
    severity: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Ticket:
    """The customer contacts us again about the same ticket. A new severity re-clocks the
    ticket, but a repeat call never moves a due time later (earlier breaches stay); a raised
    severity climbs one escalation level (rules.climb)."""
    from crm.plugins.service import escalation

    _writer(session, "登记客户来电")
    ticket = get_ticket(session, number)
    now = now or utcnow()
    at = when_done(at, now, ticket.opened_at, "工单受理时间")
    channel = code_of(CHANNELS, channel, "渠道")
    if not note or not note.strip():
        raise CrmError("请写明客户这次反映了什么。")
    contacts = session.scalar(
        select(func.count(TicketEvent.id)).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.action.in_(("open", "contact"))
        )
    )
    record_event(
        session,
        ticket,
        "contact",
        f"第 {contacts + 1} 次联系（{CHANNELS[channel]}）：{note.strip()}",
        at,
        now,
    )
    if severity is not None:
        new = code_of(SEVERITIES, severity, "严重程度")
        if ticket.status not in (*RUNNING, PAUSED):
            raise CrmError(f"{ticket.number} 已关闭，不能再调整严重程度：请先重新处理（reopen）。")
        if new != ticket.severity:
            old = ticket.severity
            ticket.severity = new
            if rules.raised(old, new):
                ticket.severity_raises = (ticket.severity_raises or 0) + 1
            sla.reclock(session, ticket, at, keep_earlier=True)
            record_event(
                session,
                ticket,
                "severity",
                f"严重程度 {SEVERITIES[old]} → {SEVERITIES[new]}",
                at,
                now,
            )
    session.flush()
    escalation.escalate_ticket(session, ticket, at)
    return ticket


def claim(session: Session, number: str, staff_name: str, now: dt.datetime | None = None) -> Ticket:
    """认领: give an unowned ticket to a person. One conditional UPDATE (… WHERE owner_id IS
    NULL), so of two agents claiming at once exactly one wins."""
    actor = _writer(session, "认领工单")
    now = now or utcnow()
    staff = session.scalar(select(Staff).where(Staff.name == staff_name.strip()))
    if staff is None or not staff.active:
        raise NotFound(f"找不到在职员工“{staff_name}”：请用 crm staff list 查看。")
    t = Ticket.__table__
    won = session.execute(
        update(t)
        .where(
            t.c.number == halfwidth(number).strip(),
            t.c.owner_id.is_(None),
            t.c.status.not_in(CLOSED_STATUSES),
        )
        .values(owner_id=staff.id, version=t.c.version + 1)
        .returning(t.c.id)
    ).scalar()
    if won is None:
        ticket = get_ticket(session, number)
        if ticket.status in CLOSED_STATUSES:
            raise CrmError(f"{ticket.number} 已关闭，无需认领。")
        owner = session.get(Staff, ticket.owner_id)
        raise CrmError(
            f"{ticket.number} 已由 {owner.name} 认领：如需转交，请 {owner.name} 本人、团队主管或经理"
            f"用 crm ticket reassign {ticket.number} 新负责人 办理。"
        )
    session.add(
        TicketEvent(
            ticket_id=won,
            at=now,
            entered_at=now,
            actor=actor,
            action="claim",
            note=f"由 {staff.name} 认领",
        )
    )
    record(session, "claim", "svc_tickets", won, changes={"owner": [None, staff.name]})
    ticket = session.get(Ticket, won)
    session.expire(ticket)
    session.flush()
    return ticket


def reassign(
    session: Session,
    number: str,
    staff_name: str,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> Ticket:
    """转交: give an open ticket to another person. A manager or administrator may move any
    open ticket (permission ticket.reassign); anyone else who handles tickets only one they
    own (the current owner hands it on) or one of a team they supervise (the staff member of
    their name, level 2 or above, in the ticket's team). The ticket's version is checked on
    write: a claim or reassignment made meanwhile is not overwritten."""
    user = current_user(session)
    user.require("ticket.handle", "转交工单")
    now = now or utcnow()
    ticket = get_ticket(session, number)
    if ticket.status in CLOSED_STATUSES:
        raise CrmError(f"{ticket.number} 已关闭，不能转交：如需继续处理，请先重新处理（reopen）。")
    staff = session.scalar(select(Staff).where(Staff.name == staff_name.strip()))
    if staff is None or not staff.active:
        raise NotFound(f"找不到在职员工“{staff_name}”：请用 crm staff list 查看。")
    owner = session.get(Staff, ticket.owner_id) if ticket.owner_id else None
    if owner is not None and owner.id == staff.id:
        raise CrmError(f"{ticket.number} 已由 {staff.name} 负责，无需转交。")
    if not _may_reassign(session, user, ticket, owner):
        who = f"当前负责人 {owner.name}、" if owner is not None else ""
        raise PermissionDenied(
            f"{user.label}不能转交 {ticket.number}：只有{who}该工单团队的主管、经理或系统管理员可以转交。"
        )
    reason = (reason or "").strip() or None
    before = owner.name if owner is not None else None
    ticket.owner_id = staff.id
    note = f"由 {before or '（无人负责）'} 转交 {staff.name}" + (f"：{reason}" if reason else "")
    record_event(session, ticket, "reassign", note, now)
    record(session, "reassign", "svc_tickets", ticket.id, changes={"owner": [before, staff.name]})
    session.flush()
    return ticket


def _may_reassign(session: Session, user, ticket: Ticket, owner: Staff | None) -> bool:
    if user.can("ticket.reassign"):
        return True
    if owner is not None and owner.name == user.name:
        return True
    supervisor = session.scalar(
        select(Staff.id).where(
            Staff.name == user.name,
            Staff.active.is_(True),
            Staff.level >= 2,
            Staff.team_id == ticket.team_id,
        )
    )
    return ticket.team_id is not None and supervisor is not None


# --- reading ----------------------------------------------------------------------------------


def _unit_text(session: Session, unit_id: int | None) -> str | None:
    if unit_id is None:
        return None
    row = session.execute(
        select(Project.name, Building.name, Unit.code)
        .select_from(Unit)
        .join(Building, Unit.building_id == Building.id)
        .join(Project, Building.project_id == Project.id)
        .where(Unit.id == unit_id)
    ).one()
    return "/".join(row)


def ticket_row(ticket: Ticket, household: Household, now: dt.datetime) -> dict[str, Any]:
    """One ticket for the lists: codes for type, step, severity, category and origin (the CLI
    shows their labels, JSON keeps the codes)."""
    overdue = ticket.status in RUNNING and (
        (ticket.resolve_due_at is not None and ticket.resolve_due_at <= now)
        or (
            ticket.first_response_at is None
            and ticket.response_due_at is not None
            and ticket.response_due_at <= now
        )
    )
    return {
        "number": ticket.number,
        "type": ticket.ticket_type,
        "status": ticket.status,
        "severity": ticket.severity,
        "category": ticket.category,
        "origin": ticket.origin,
        "household": household.code,
        "household_name": household.name,
        "team": ticket.team.name if ticket.team else None,
        "owner": ticket.owner.name if ticket.owner else None,
        "level": ticket.escalation_level,
        "opened_at": ticket.opened_at,
        "resolve_due_at": ticket.resolve_due_at,
        "overdue": overdue,
        "breached": ticket.response_breached or ticket.resolve_breached,
        "summary": ticket.summary,
    }


def list_tickets(
    session: Session,
    status: str | None = None,
    overdue: bool = False,
    at_risk: bool = False,
    project: str | None = None,
    team: str | None = None,
    ticket_type: str | None = None,
    limit: int | None = 100,
    now: dt.datetime | None = None,
    household: str | None = None,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page:
    """Tickets for the duty desk, most urgent (earliest due) first: one page of them, with
    how many match. `household` is a customer code; `since`/`until` bound the time a ticket
    was opened ([since, until))."""
    now = now or utcnow()
    query = select(Ticket, Household).join(Household, Ticket.household_id == Household.id)
    if household:
        query = query.where(Ticket.household_id == get_household(session, household).id)
    query = query.where(*between(Ticket.opened_at, since, until))
    if status:
        if status == "open":
            query = query.where(Ticket.status.not_in(CLOSED_STATUSES))
        else:
            query = query.where(
                Ticket.status == code_of(STATUSES | {"open": "未关闭"}, status, "状态")
            )
    if ticket_type:
        query = query.where(Ticket.ticket_type == code_of(TICKET_TYPES, ticket_type, "工单类型"))
    if overdue:
        query = sla.overdue_filter(query, now)
    if at_risk:
        query = sla.at_risk_filter(query, now)
    if project:
        from crm.core.households import project_id

        query = query.where(Ticket.project_id == project_id(session, project))
    if team:
        found = session.scalar(select(Team.id).where((Team.code == team) | (Team.name == team)))
        if found is None:
            raise NotFound(f"找不到团队“{team}”：请用 crm team list 查看。")
        query = query.where(Ticket.team_id == found)
    query = query.options(selectinload(Ticket.team), selectinload(Ticket.owner))
    order = (Ticket.resolve_due_at.is_(None), Ticket.resolve_due_at, Ticket.id)
    page = fetch(session, query.order_by(*order), limit, offset)
    return page.map(lambda found: ticket_row(found[0], found[1], now))


def ticket_brief(session: Session, number: str) -> dict[str, Any]:
    """What an action on a ticket answers with: its number, type, step, the steps allowed next,
    severity, owner, escalation level and resolution target (codes, the same values as in
    show_ticket, without the queries for its events, work orders and the rest)."""
    ticket = get_ticket(session, number)
    return {
        "number": ticket.number,
        "type": ticket.ticket_type,
        "status": ticket.status,
        "next_steps": allowed_actions(ticket),
        "severity": ticket.severity,
        "owner": ticket.owner.name if ticket.owner else None,
        "level": ticket.escalation_level,
        "resolve_due_at": ticket.resolve_due_at,
        "resolve_breached": ticket.resolve_breached,
    }


def show_ticket(session: Session, number: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """The ticket with its events, commitments, escalations and work orders (codes, as in
    ticket_row)."""
    now = now or utcnow()
    ticket = get_ticket(session, number)
    household = session.get(Household, ticket.household_id)
    group = session.get(GroupComplaint, ticket.group_id) if ticket.group_id else None
    staff_names = dict(session.execute(select(Staff.id, Staff.name)).all())
    detail = ticket_row(ticket, household, now) | {
        "channel": ticket.channel,
        "unit": _unit_text(session, ticket.unit_id),
        "expectations": list(ticket.expectations or []),
        "reported_by": ticket.reported_by,
        "group": group.number if group else None,
        "first_response_at": ticket.first_response_at,
        "response_due_at": ticket.response_due_at,
        "warned_at": ticket.warned_at,
        "response_breached": ticket.response_breached,
        "resolve_breached": ticket.resolve_breached,
        "breached_at": ticket.breached_at,
        "paused_minutes": round(ticket.paused_minutes or 0.0, 1),
        "replied_at": ticket.replied_at,
        "closed_at": ticket.closed_at,
        "customer_confirmed": ticket.customer_confirmed,
        "result": ticket.result,
        "revisited_at": ticket.revisited_at,
        "completed_at": ticket.completed_at,
        "reopen_count": ticket.reopen_count,
        "root_cause": ticket.root_cause,
        "corrective_action": ticket.corrective_action,
        "next_steps": allowed_actions(ticket),
        "created_at": ticket.created_at,
        "arrived_at": ticket.arrived_at,
    }
    from crm.plugins.service import complaint_record

    detail["causes"] = complaint_record.causes_of(session, [ticket.id]).get(ticket.id, [])
    detail["options"] = complaint_record.option_rows(session, ticket.id)
    detail["events"] = [
        {
            "at": e.at,
            "entered_at": e.entered_at,
            "actor": e.actor,
            "action": e.action,
            "from": e.from_status,
            "to": e.to_status,
            "note": e.note,
        }
        for e in session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        )
    ]
    detail["commitments"] = [
        {
            "what": c.what,
            "due_at": c.due_at,
            "promised_by": c.promised_by,
            "status": c.status,
            "apology": c.apology,
            "reason": c.reason,
            "remedy": c.remedy,
        }
        for c in ticket.commitments
    ]
    detail["escalations"] = [
        {
            "rule": e.rule,
            "level": e.level,
            "to": staff_names.get(e.to_staff_id),
            "fired_at": e.fired_at,
            "note": e.note,
        }
        for e in session.scalars(
            select(Escalation).where(Escalation.ticket_id == ticket.id).order_by(Escalation.id)
        )
    ]
    detail["work_orders"] = [
        {
            "number": w.number,
            "kind": w.kind,
            "assignee": staff_names.get(w.assignee_id),
            "status": w.status,
            "due_at": w.due_at,
            "arrived_at": w.arrived_at,
            "result": w.result,
        }
        for w in session.scalars(
            select(WorkOrder).where(WorkOrder.ticket_id == ticket.id).order_by(WorkOrder.id)
        )
    ]
    return detail


def recent_numbers(session: Session, limit: int) -> list[str]:
    """The register numbers of the `limit` newest tickets, newest first (completion at the
    `crm shell` prompt)."""
    return list(session.scalars(select(Ticket.number).order_by(Ticket.id.desc()).limit(limit)))
