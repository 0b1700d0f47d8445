"""Tickets (工单): complaints, repairs, suggestions and enquiries under one register number,
moved through their steps by an explicit transition table.

Complaints take the eight steps (DOMAIN.md, [000]):
    accepted 受理 → confirmed 确认 → assessed 评估 → investigating 调查 → replied 回复
    → closed 跟踪关闭 → revisited 回访 → completed 信息反馈
A reply the customer does not accept goes back to investigating; a dissatisfied revisit may
reopen the ticket (back to investigating, a fresh resolution target, one escalation level up).

The shorter flows:
    repair      accepted → assessed (item, severity, dispatch) → investigating (the work)
                → closed → revisited (the mandatory phone revisit ends a repair)
    suggestion  accepted → assessed → replied (the answer to the suggester) → closed
                → completed (what the suggestion changed: the feedback step)
    enquiry     accepted → replied (the answer) → closed
Every flow may wait for the customer (waiting_customer 等待客户) from any running step and
returns to the step it left; the SLA clocks stop meanwhile (see sla.py).

Library functions take the session and an explicit `now`, never commit, and refuse what is not
allowed with one sentence naming what is.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Integer, String, case, cast, func, literal, select, update
from sqlalchemy.orm import Session, selectinload

from crm.core import vocab
from crm.core.audit import current_user, record
from crm.core.chain import Revisit, TicketFacts
from crm.core.clock import to_local
from crm.core.errors import CrmError, NotFound
from crm.core.households import get_household
from crm.core.identity import halfwidth
from crm.core.models import Building, Household, Project, Purchase, Unit, utcnow
from crm.core.vocab import code_of
from crm.plugins.service import sla
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

TICKET_TYPES = sla.TICKET_TYPES
PREFIXES = {"complaint": "TS", "repair": "WX", "suggestion": "JY", "enquiry": "ZX"}
CHANNELS = vocab.SERVICE_CHANNELS  # the same channels as the core service records
STATUSES = {
    "accepted": "受理",
    "confirmed": "确认",
    "assessed": "评估",
    "investigating": "调查",
    "replied": "回复",
    "closed": "跟踪关闭",
    "revisited": "回访",
    "completed": "信息反馈",
    "waiting_customer": "等待客户",
}
SEVERITIES = sla.SEVERITIES
CATEGORIES = {
    "engineering": "工程",
    "design": "设计",
    "sales_management": "销售管理",
    "service": "服务",
}
EXPECTATIONS = {
    "taken_seriously": "被重视",
    "respect": "被尊重",
    "fix_now": "马上解决",
    "compensation": "补偿",
    "punish": "惩罚责任人",
    "never_again": "不再发生",
    "be_heard": "被倾听",
}
ACTIONS = {
    "confirm": "确认",
    "assess": "评估",
    "investigate": "调查",
    "reply": "回复",
    "close": "跟踪关闭",
    "revisit": "回访",
    "feedback": "信息反馈",
    "pause": "等待客户",
    "resume": "恢复处理",
    "reopen": "重新处理",
}
# Events that are not steps: what the handling log calls them.
EVENT_LABELS = ACTIONS | {
    "open": "受理登记",
    "contact": "客户再次联系",
    "severity": "调整严重程度",
    "claim": "认领",
    "assign": "分派",
    "dispatch": "派工",
    "work_done": "派工完成",
    "work_returned": "退回主管",
    "promise": "承诺",
    "commitment_kept": "承诺兑现",
    "commitment_broken": "承诺未兑现",
    "commitment_settled": "致歉补救",
    "warning": "超时预警",
    "response_breach": "响应超时",
    "resolve_breach": "解决超时",
    "escalate": "升级",
    "group": "并入群诉",
}
ESCALATION_RULES = {
    "major": "重大直达经理",
    "breach": "超时",
    "reopen": "重新处理",
    "group": "群诉",
}
CLOSED_STATUSES = ("closed", "revisited", "completed")
RUNNING = sla.RUNNING
PAUSED = sla.PAUSED
# Target marker: leave waiting_customer for the step the ticket was in before.
RESUME = "<resume>"
DISSATISFIED = 2  # a revisit CSAT at or below this may reopen the ticket
# A promise names a person ("I will …"), never a collective.
COLLECTIVE_WORDS = ("我们", "公司", "中心", "部门", "团队", "物业", "大家", "we", "us", "team")
# Serialises register-number allocation on PostgreSQL (SQLite serialises writers itself).
NUMBER_LOCK = 0x5E7C_0001


def _pausable(flow: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Every running step of a flow may wait for the customer, and return from it."""
    table = {
        status: ({**moves, "pause": PAUSED} if status in RUNNING else dict(moves))
        for status, moves in flow.items()
    }
    table[PAUSED] = {"resume": RESUME}
    return table


FLOWS: dict[str, dict[str, dict[str, str]]] = {
    "complaint": _pausable(
        {
            "accepted": {"confirm": "confirmed"},
            "confirmed": {"assess": "assessed"},
            "assessed": {"investigate": "investigating"},
            "investigating": {"reply": "replied"},
            "replied": {"close": "closed", "investigate": "investigating"},
            "closed": {"revisit": "revisited", "reopen": "investigating"},
            "revisited": {"feedback": "completed", "reopen": "investigating"},
            "completed": {},
        }
    ),
    "repair": _pausable(
        {
            "accepted": {"assess": "assessed"},
            "assessed": {"investigate": "investigating"},
            "investigating": {"close": "closed"},
            "closed": {"revisit": "revisited", "reopen": "investigating"},
            "revisited": {"reopen": "investigating"},
        }
    ),
    "suggestion": _pausable(
        {
            "accepted": {"assess": "assessed"},
            "assessed": {"reply": "replied"},
            "replied": {"close": "closed"},
            "closed": {"feedback": "completed"},
            "completed": {},
        }
    ),
    "enquiry": _pausable(
        {
            "accepted": {"reply": "replied"},
            "replied": {"close": "closed"},
            "closed": {},
        }
    ),
}
# Actions that carry no data of their own (the rest have their own functions).
SIMPLE_ACTIONS = ("confirm", "investigate", "pause", "resume", "reopen")


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


# --- the state machine ------------------------------------------------------------------------


def allowed_actions(ticket: Ticket) -> list[str]:
    return list(FLOWS[ticket.ticket_type].get(ticket.status, {}))


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
    if action not in FLOWS[ticket.ticket_type].get(ticket.status, {}):
        raise CrmError(_refusal(ticket, action))


def _status_before_pause(session: Session, ticket: Ticket) -> str:
    left = session.scalar(
        select(TicketEvent.from_status)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.to_status == PAUSED)
        .order_by(TicketEvent.id.desc())
        .limit(1)
    )
    return left or "accepted"


def _transition(
    session: Session, ticket: Ticket, action: str, now: dt.datetime, note: str | None
) -> TicketEvent:
    """Move the ticket by the table and record who, when, from, to and the note."""
    _require_step(ticket, action)
    target = FLOWS[ticket.ticket_type][ticket.status][action]
    if target == RESUME:
        target = _status_before_pause(session, ticket)
    before = ticket.status
    ticket.status = target
    # Any step taken on the request is the first response to the customer.
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    event = TicketEvent(
        ticket_id=ticket.id,
        at=now,
        actor=current_user(session).name,
        action=action,
        from_status=before,
        to_status=target,
        note=(note or "").strip() or None,
    )
    session.add(event)
    session.flush()
    return event


def record_event(
    session: Session, ticket: Ticket, action: str, note: str, now: dt.datetime
) -> TicketEvent:
    """A non-transition event on the ticket (the status stays as it is)."""
    event = TicketEvent(
        ticket_id=ticket.id,
        at=now,
        actor=current_user(session).name,
        action=action,
        from_status=ticket.status,
        to_status=ticket.status,
        note=note,
    )
    session.add(event)
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


def _number_expression(session: Session, ticket_type: str, now: dt.datetime):
    """The next register number, computed inside the INSERT: SQLite runs it under the write
    lock and PostgreSQL under an advisory lock, so two agents never get the same number."""
    head = f"{PREFIXES[ticket_type]}{to_local(now):%Y%m%d}-"
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(NUMBER_LOCK)))
    prev = Ticket.__table__.alias("prev")
    following = (
        select(
            func.coalesce(func.max(cast(func.substr(prev.c.number, len(head) + 1), Integer)), 0) + 1
        )
        .where(prev.c.number.like(f"{head}%"))
        .scalar_subquery()
    )
    # At least four digits: 10000 + n with its leading 1 dropped reads the same on both
    # databases; from the 10,000th ticket of a day on, the number simply grows a digit.
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
) -> Ticket:
    """Register a request (受理) under a new number and start its SLA clocks."""
    actor = _writer(session, "登记工单")
    now = now or utcnow()
    ticket_type = code_of(TICKET_TYPES, ticket_type, "工单类型")
    channel = code_of(CHANNELS, channel, "渠道")
    if not summary or not summary.strip():
        raise CrmError("请写明客户反映的问题（摘要）。")
    household = get_household(session, household_code)
    found = _household_unit(session, household, unit) if unit else None
    building = session.get(Building, found.building_id) if found else None
    ticket = Ticket(
        number=_number_expression(session, ticket_type, now),
        ticket_type=ticket_type,
        channel=channel,
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
        opened_at=now,
        paused_minutes=0.0,
    )
    sla.start_clock(session, ticket, now)
    session.add(ticket)
    session.flush()
    session.refresh(ticket, ["number"])
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            at=now,
            actor=actor,
            action="open",
            from_status=None,
            to_status="accepted",
            note=f"{_label(CHANNELS, channel)}受理：{ticket.summary}",
        )
    )
    session.flush()
    return ticket


# --- the steps --------------------------------------------------------------------------------


def step(
    session: Session,
    number: str,
    action: str,
    note: str | None = None,
    now: dt.datetime | None = None,
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
        return handlers[action](session, number, note=note, now=now)
    _writer(session, ACTIONS[action])
    ticket = get_ticket(session, number)
    _transition(session, ticket, action, now or utcnow(), note)
    return ticket


def assess(
    session: Session,
    number: str,
    severity: str,
    category: str,
    expectations: list[str],
    note: str | None = None,
    now: dt.datetime | None = None,
) -> Ticket:
    """评估: severity, category and what the customer expects; then dispatch by category and
    escalate a major ticket straight to the manager. The classifier's suggestion (when a model
    is trained) is recorded with the event next to the staff's choice, which always wins."""
    from crm.plugins.service import classification, dispatch, escalation

    _writer(session, "评估工单")
    now = now or utcnow()
    ticket = get_ticket(session, number)
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
    event = _transition(session, ticket, "assess", now, summary)
    if suggestion is not None:  # left SQL NULL otherwise (a JSON column would store 'null')
        event.details = classification.assess_details(suggestion, category, severity)
    ticket.category = category
    ticket.expectations = wanted
    if severity != ticket.severity:
        ticket.severity = severity
        sla.reclock(session, ticket, now)
    dispatch.assign_ticket(session, ticket, now)
    escalation.escalate_ticket(session, ticket, now)
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
    now: dt.datetime,
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
    if due_at <= now:
        raise CrmError("承诺的完成时间必须在将来。")
    commitment = Commitment(
        ticket=ticket,
        what=what.strip(),
        due_at=due_at,
        promised_by=_check_promiser(promised_by),
        status="open",
    )
    session.add(commitment)
    session.flush()
    record_event(
        session,
        ticket,
        "promise",
        f"{commitment.promised_by}承诺：我会在 {_local(due_at)} 前{commitment.what}",
        now,
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
) -> Ticket:
    """回复: tell the customer what will be done; a complaint's reply is a commitment (what, by
    when, by whom)."""
    _writer(session, "回复客户")
    now = now or utcnow()
    ticket = get_ticket(session, number)
    _require_step(ticket, "reply")
    promising = what is not None or due_at is not None or promised_by is not None
    if ticket.ticket_type == "complaint" or promising:
        if not (what and due_at and promised_by):
            raise CrmError(
                "投诉的回复须是一项承诺：写明做什么、何时前完成、由谁负责（--what --due --by）。"
            )
        _promise(session, ticket, what, due_at, promised_by, now)
    _transition(session, ticket, "reply", now, note)
    ticket.replied_at = now
    return ticket


def add_commitment(
    session: Session,
    number: str,
    what: str,
    due_at: dt.datetime,
    promised_by: str,
    now: dt.datetime | None = None,
) -> Commitment:
    """A further promise on an open ticket (after a broken one has been settled)."""
    _writer(session, "登记承诺")
    now = now or utcnow()
    ticket = get_ticket(session, number)
    if ticket.status in CLOSED_STATUSES:
        raise CrmError(
            f"{ticket.number} 已关闭，不能再作承诺：客户仍不满意时请先重新处理（reopen）。"
        )
    return _promise(session, ticket, what, due_at, promised_by, now)


def keep_commitment(session: Session, number: str, now: dt.datetime | None = None) -> Commitment:
    """The open promise was kept."""
    _writer(session, "登记承诺兑现")
    now = now or utcnow()
    ticket = get_ticket(session, number)
    current = _open_commitment(ticket)
    if current is None:
        raise CrmError(f"{ticket.number} 没有待兑现的承诺。")
    if current.due_at < now:
        raise CrmError(
            f"承诺“{current.what}”的期限 {_local(current.due_at)} 已过：逾期即失信，请用 "
            "crm ticket settle 致歉、说明原因并提出补救。"
        )
    current.status = "kept"
    current.settled_at = now
    record_event(session, ticket, "commitment_kept", f"承诺已兑现：{current.what}", now)
    session.flush()
    return current


def settle_broken_commitment(
    session: Session,
    number: str,
    apology: str,
    reason: str,
    remedy: str,
    now: dt.datetime | None = None,
) -> Commitment:
    """A promise that cannot be (or was not) kept: apologise, say why, offer a remedy. Marks an
    open promise broken too, so a promise known to fail is settled at once."""
    _writer(session, "处理失信承诺")
    now = now or utcnow()
    ticket = get_ticket(session, number)
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
    target.settled_at = now
    record_event(
        session,
        ticket,
        "commitment_settled",
        f"承诺“{target.what}”未能兑现：致歉——{target.apology}；原因——{target.reason}；"
        f"补救——{target.remedy}",
        now,
    )
    session.flush()
    return target


def close(
    session: Session,
    number: str,
    customer_confirmed: bool,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> Ticket:
    """跟踪关闭: only with the customer's confirmation and no promise left hanging."""
    _writer(session, "关闭工单")
    now = now or utcnow()
    ticket = get_ticket(session, number)
    _require_step(ticket, "close")
    if not customer_confirmed:
        raise CrmError(
            f"关闭 {ticket.number} 须经客户确认问题已解决：确认后请加 --confirmed 再关闭。"
        )
    broken = _unsettled_broken(ticket)
    current = _open_commitment(ticket)
    if broken is not None or (current is not None and current.due_at < now):
        late = broken or current
        raise CrmError(
            f"承诺“{late.what}”未能按时兑现：须先向客户致歉、说明原因并提出补救"
            "（crm ticket settle），再关闭。"
        )
    if current is not None:
        current.status = "kept"
        current.settled_at = now
    _transition(session, ticket, "close", now, note or "客户已确认")
    ticket.customer_confirmed = True
    ticket.closed_at = now
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
    now: dt.datetime | None = None,
) -> Ticket:
    """回访: the customer's answers go to satisfaction monitoring (tickets_revisited hook); a
    dissatisfied customer (CSAT ≤ 2) may have the ticket reopened."""
    actor = _writer(session, "回访")
    now = now or utcnow()
    ticket = get_ticket(session, number)
    _require_step(ticket, "revisit")
    _check_score(csat, 1, 5, "满意度（CSAT）")
    _check_score(nps, 0, 10, "推荐意愿（NPS）")
    aspects = dict(aspects or {})
    for aspect, pair in aspects.items():
        if len(pair) != 2:
            raise CrmError(f"方面“{aspect}”须给出期望和体验两个分数。")
        _check_score(pair[0], 1, 10, f"“{aspect}”的期望分")
        _check_score(pair[1], 1, 10, f"“{aspect}”的体验分")
    if reopen_ticket and csat > DISSATISFIED:
        raise CrmError(
            f"满意度 {csat} 分不算不满意：只有 {DISSATISFIED} 分及以下的回访才能重新处理工单。"
        )
    note = f"满意度 {csat}" + (f"，推荐意愿 {nps}" if nps is not None else "")
    if comment and comment.strip():
        note += f"；客户意见：{comment.strip()}"
    _transition(session, ticket, "revisit", now, note)
    ticket.revisited_at = now
    session.flush()
    session.info["pm"].hook.tickets_revisited(
        session=session,
        revisits=[
            Revisit(
                ticket=facts(ticket),
                at=now,
                csat=csat,
                nps=nps,
                aspects=aspects,
                comment=(comment or "").strip() or None,
                actor=actor,
            )
        ],
    )
    if reopen_ticket:
        reopen(session, number, note=f"回访不满意（满意度 {csat}）", now=now)
    return ticket


def reopen(
    session: Session, number: str, note: str | None = None, now: dt.datetime | None = None
) -> Ticket:
    """重新处理: back to investigating with a fresh resolution target, one level up."""
    from crm.plugins.service import escalation

    _writer(session, "重新处理工单")
    now = now or utcnow()
    ticket = get_ticket(session, number)
    _require_step(ticket, "reopen")
    if not note or not note.strip():
        raise CrmError("重新处理须写明原因（客户哪里仍不满意）。")
    _transition(session, ticket, "reopen", now, note)
    ticket.reopen_count = (ticket.reopen_count or 0) + 1
    ticket.closed_at = None
    ticket.customer_confirmed = False
    ticket.warned_at = None
    ticket.paused_minutes = 0.0
    session.flush()
    sla.start_clock(session, ticket, now)
    escalation.escalate_ticket(session, ticket, now)
    return ticket


def feedback(
    session: Session,
    number: str,
    root_cause: str,
    corrective_action: str,
    now: dt.datetime | None = None,
) -> Ticket:
    """信息反馈: the root cause and the corrective action that prevents it happening again."""
    _writer(session, "登记信息反馈")
    now = now or utcnow()
    ticket = get_ticket(session, number)
    _require_step(ticket, "feedback")
    missing = [
        label
        for label, text in (("根本原因", root_cause), ("纠正措施", corrective_action))
        if not (text and text.strip())
    ]
    if missing:
        raise CrmError(f"信息反馈须写明根本原因和防止再发生的纠正措施：还缺{'、'.join(missing)}。")
    ticket.root_cause = root_cause.strip()
    ticket.corrective_action = corrective_action.strip()
    _transition(
        session,
        ticket,
        "feedback",
        now,
        f"根本原因：{ticket.root_cause}；纠正措施：{ticket.corrective_action}",
    )
    ticket.completed_at = now
    return ticket


def pause(
    session: Session, number: str, note: str | None = None, now: dt.datetime | None = None
) -> Ticket:
    """等待客户: the SLA clocks stop until the ticket resumes."""
    _writer(session, "暂停等待客户")
    now = now or utcnow()
    ticket = get_ticket(session, number)
    _require_step(ticket, "pause")
    if not note or not note.strip():
        raise CrmError("等待客户须写明在等什么（如“业主出差，约定 5 月 3 日上门”）。")
    _transition(session, ticket, "pause", now, note)
    sla.pause(ticket, now)
    return ticket


def resume(
    session: Session, number: str, note: str | None = None, now: dt.datetime | None = None
) -> Ticket:
    """Back to the step the ticket left; the due times move out by the time waited."""
    _writer(session, "恢复处理")
    now = now or utcnow()
    ticket = get_ticket(session, number)
    _require_step(ticket, "resume")
    waited = sla.resume(session, ticket, now)
    _transition(
        session,
        ticket,
        "resume",
        now,
        (note or "").strip() + f"（等待 {waited:.0f} 分钟，时限顺延）",
    )
    return ticket


def record_contact(
    session: Session,
    number: str,
    channel: str,
    note: str,
    severity: str | None = None,
    now: dt.datetime | None = None,
) -> Ticket:
    """The customer contacts us again about the same ticket; the severity may be raised,
    which re-clocks the ticket (earlier breaches stay) and may escalate it."""
    from crm.plugins.service import escalation

    _writer(session, "登记客户来电")
    now = now or utcnow()
    ticket = get_ticket(session, number)
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
        now,
    )
    if severity is not None:
        new = code_of(SEVERITIES, severity, "严重程度")
        if ticket.status not in (*RUNNING, PAUSED):
            raise CrmError(f"{ticket.number} 已关闭，不能再调整严重程度：请先重新处理（reopen）。")
        if new != ticket.severity:
            old = ticket.severity
            ticket.severity = new
            sla.reclock(session, ticket, now)
            record_event(
                session,
                ticket,
                "severity",
                f"严重程度 {SEVERITIES[old]} → {SEVERITIES[new]}",
                now,
            )
    session.flush()
    escalation.escalate_ticket(session, ticket, now)
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
        raise CrmError(f"{ticket.number} 已由 {owner.name} 认领：如需转交请联系其主管。")
    session.add(
        TicketEvent(
            ticket_id=won, at=now, actor=actor, action="claim", note=f"由 {staff.name} 认领"
        )
    )
    record(session, "claim", "svc_tickets", won, changes={"owner": [None, staff.name]})
    ticket = session.get(Ticket, won)
    session.expire(ticket)
    session.flush()
    return ticket


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
        "type": _label(TICKET_TYPES, ticket.ticket_type),
        "status": _label(STATUSES, ticket.status),
        "severity": _label(SEVERITIES, ticket.severity),
        "category": _label(CATEGORIES, ticket.category),
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
    limit: int = 100,
    now: dt.datetime | None = None,
) -> list[dict]:
    """Tickets for the duty desk, most urgent (earliest due) first."""
    now = now or utcnow()
    query = select(Ticket, Household).join(Household, Ticket.household_id == Household.id)
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
    rows = session.execute(
        query.order_by(Ticket.resolve_due_at.is_(None), Ticket.resolve_due_at, Ticket.id).limit(
            limit
        )
    ).all()
    return [ticket_row(ticket, household, now) for ticket, household in rows]


def show_ticket(session: Session, number: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """The ticket with its events, commitments, escalations and work orders."""
    now = now or utcnow()
    ticket = get_ticket(session, number)
    household = session.get(Household, ticket.household_id)
    group = session.get(GroupComplaint, ticket.group_id) if ticket.group_id else None
    staff_names = dict(session.execute(select(Staff.id, Staff.name)).all())
    detail = ticket_row(ticket, household, now) | {
        "channel": _label(CHANNELS, ticket.channel),
        "unit": _unit_text(session, ticket.unit_id),
        "expectations": [_label(EXPECTATIONS, e) for e in ticket.expectations or []],
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
        "revisited_at": ticket.revisited_at,
        "completed_at": ticket.completed_at,
        "reopen_count": ticket.reopen_count,
        "root_cause": ticket.root_cause,
        "corrective_action": ticket.corrective_action,
        "next_steps": [f"{a}（{ACTIONS[a]}）" for a in allowed_actions(ticket)],
    }
    detail["events"] = [
        {
            "at": e.at,
            "actor": e.actor,
            "action": EVENT_LABELS.get(e.action, e.action),
            "from": _label(STATUSES, e.from_status),
            "to": _label(STATUSES, e.to_status),
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
            "status": {"open": "待兑现", "kept": "已兑现", "broken": "未兑现"}.get(
                c.status, c.status
            ),
            "apology": c.apology,
            "reason": c.reason,
            "remedy": c.remedy,
        }
        for c in ticket.commitments
    ]
    detail["escalations"] = [
        {
            "rule": ESCALATION_RULES.get(e.rule, e.rule),
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
            "result": w.result,
        }
        for w in session.scalars(
            select(WorkOrder).where(WorkOrder.ticket_id == ticket.id).order_by(WorkOrder.id)
        )
    ]
    return detail
