"""Complaint classification and hot spots, the service side: the tickets staff have classified
(training data for the analysis plugin's classifier), complaint counts per place, category
and period (for hot spots), the households with a complaint still open (campaigns leave them
out), and the model's suggestion shown at assessment time.

The suggestion comes through the `suggest_classification` hook and is advice only: staff
choose the category and severity, and the assess event records what was suggested and
whether they followed it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from crm.core.errors import CrmError
from crm.core.models import Building, Project
from crm.core.render import percent
from crm.core.sqltime import day_of, month_of
from crm.plugins.service.models import Ticket, TicketEvent
from crm.plugins.service.rules import (
    CATEGORIES,
    CLOSED_STATUSES,
    CUSTOMER,
    FLOWS,
    SEVERITIES,
    TICKET_TYPES,
)
from crm.plugins.service.tickets import get_ticket

GRAINS = {"month": "月", "week": "周"}
TRAIN_COMMAND = "crm analysis classify train"
NO_MODEL = (
    f"还没有训练投诉分类模型，暂无建议：请先运行 {TRAIN_COMMAND}"
    "（用已评估的工单训练，需要数据分析插件）。"
)


def _window(query, column, since: dt.datetime | None, until: dt.datetime | None):
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    return query


# --- what the analysis plugin reads -------------------------------------------------------------


def classified_tickets(
    session: Session, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> list[dict]:
    """Tickets opened in [since, until) whose category and severity staff set at assessment
    (an assess event exists), oldest first. The labels are the ticket's current ones: a
    severity raised later by the customer's next call is the staff's better-informed view."""
    assessed = exists().where(TicketEvent.ticket_id == Ticket.id, TicketEvent.action == "assess")
    query = (
        select(
            Ticket.number,
            Ticket.ticket_type,
            Ticket.summary,
            Ticket.category,
            Ticket.severity,
            Ticket.opened_at,
            Project.name.label("project"),
            Building.name.label("building"),
        )
        .outerjoin(Project, Project.id == Ticket.project_id)
        .outerjoin(Building, Building.id == Ticket.building_id)
        .where(assessed, Ticket.category.is_not(None))
        .order_by(Ticket.opened_at, Ticket.id)
    )
    query = _window(query, Ticket.opened_at, since, until)
    return [
        {
            "number": row.number,
            "ticket_type": row.ticket_type,
            "text": row.summary,
            "category": row.category,
            "category_name": CATEGORIES.get(row.category, row.category),
            "severity": row.severity,
            "severity_name": SEVERITIES.get(row.severity, row.severity),
            "opened_at": row.opened_at,
            "project": row.project,
            "building": row.building,
        }
        for row in session.execute(query)
    ]


def complaint_counts(
    session: Session, since: dt.datetime, until: dt.datetime, grain: str = "month"
) -> list[dict]:
    """Complaint tickets opened in [since, until), counted by the database per project,
    building, category and period ('2026-11' by month, '2026-W47' by ISO week, in the
    business zone). A complaint not yet assessed has category None."""
    if grain not in GRAINS:
        raise CrmError(f"不支持按“{grain}”统计：可用 month（月）或 week（周）。")
    # Weeks are counted per local day by the database and rolled up to ISO weeks here: SQLite
    # before 3.46 cannot name an ISO week, and a day per group keeps the rows few.
    period = (month_of if grain == "month" else day_of)(session, Ticket.opened_at)
    counted = (
        select(
            Ticket.project_id,
            Ticket.building_id,
            Ticket.category,
            period.label("period"),
            func.count().label("count"),
        )
        .where(
            Ticket.ticket_type == "complaint",
            Ticket.origin == CUSTOMER,
            Ticket.opened_at >= since,
            Ticket.opened_at < until,
        )
        .group_by(Ticket.project_id, Ticket.building_id, Ticket.category, period)
        .subquery()
    )
    # Names are looked up after counting, so the joins touch one row per group.
    query = select(counted, Project.name.label("project"), Building.name.label("building"))
    query = query.outerjoin(Project, Project.id == counted.c.project_id).outerjoin(
        Building, Building.id == counted.c.building_id
    )
    totals: dict[tuple, int] = {}
    for row in session.execute(query):
        key = (row.project, row.building, row.category, _period(row.period, grain))
        totals[key] = totals.get(key, 0) + int(row.count)
    causes = _cause_counts(session, since, until, grain)
    return [
        {
            "project": project,
            "building": building,
            "category": category,
            "category_name": CATEGORIES.get(category) if category else "未评估",
            "period": period,
            "count": count,
            "causes": causes.get((project, building, category, period), {}),
        }
        for (project, building, category, period), count in sorted(
            totals.items(), key=lambda item: (item[0][3], *(str(v or "") for v in item[0][:3]))
        )
    ]


def _cause_counts(session: Session, since, until, grain: str) -> dict[tuple, dict[str, int]]:
    """Per (project, building, category, period): complaints counted per recorded cause."""
    from crm.plugins.service.models import TicketCause

    period = (month_of if grain == "month" else day_of)(session, Ticket.opened_at)
    counted = (
        select(
            Ticket.project_id,
            Ticket.building_id,
            Ticket.category,
            period.label("period"),
            TicketCause.cause,
            func.count().label("count"),
        )
        .join(TicketCause, TicketCause.ticket_id == Ticket.id)
        .where(
            Ticket.ticket_type == "complaint",
            Ticket.origin == CUSTOMER,
            Ticket.opened_at >= since,
            Ticket.opened_at < until,
        )
        .group_by(Ticket.project_id, Ticket.building_id, Ticket.category, period, TicketCause.cause)
        .subquery()
    )
    query = select(counted, Project.name.label("project"), Building.name.label("building"))
    query = query.outerjoin(Project, Project.id == counted.c.project_id).outerjoin(
        Building, Building.id == counted.c.building_id
    )
    found: dict[tuple, dict[str, int]] = {}
    for row in session.execute(query):
        key = (row.project, row.building, row.category, _period(row.period, grain))
        bucket = found.setdefault(key, {})
        bucket[row.cause] = bucket.get(row.cause, 0) + int(row.count)
    return found


def _period(text: str, grain: str) -> str:
    """The group's period: the month as counted, or the ISO week ('2026-W47') of the day."""
    if grain == "month":
        return text
    year, week, _ = dt.date.fromisoformat(text).isocalendar()
    return f"{year}-W{week:02d}"


# --- the suggestion at assessment ---------------------------------------------------------------


def ask(session: Session, text: str, ticket_type: str) -> dict | None:
    """The model's suggestion for a ticket's text, or None when no plugin or no model answers.
    A model that cannot answer (say, saved by an incompatible version) must not stop staff
    from assessing, so its refusal counts as no suggestion."""
    try:
        return session.info["pm"].hook.suggest_classification(
            session=session, text=text, ticket_type=ticket_type
        )
    except CrmError:
        return None


def describe(suggestion: dict) -> str:
    """One line: 类别 工程（置信 86%），严重程度 一般（置信 60%），模型第 3 版."""
    category = CATEGORIES.get(suggestion["category"], suggestion["category"])
    severity = SEVERITIES.get(suggestion["severity"], suggestion["severity"])
    sure = {
        key: percent(suggestion.get(f"{key}_confidence"), digits=0, missing="")
        for key in ("category", "severity")
    }
    return (
        f"类别 {category}（置信 {sure['category']}），"
        f"严重程度 {severity}（置信 {sure['severity']}），"
        f"模型第 {suggestion.get('model_version')} 版"
    )


def followed(suggestion: dict, category: str, severity: str) -> dict[str, bool]:
    return {
        "category": suggestion["category"] == category,
        "severity": suggestion["severity"] == severity,
    }


def followed_text(taken: dict[str, bool]) -> str:
    return "，".join(
        f"{label}{'采纳' if taken[key] else '未采纳'}"
        for key, label in (("category", "类别"), ("severity", "严重程度"))
    )


def assess_details(suggestion: dict | None, category: str, severity: str) -> dict | None:
    """What the assess event keeps: the suggestion, the staff's choice and which parts of the
    suggestion they followed. None when there was no suggestion."""
    if suggestion is None:
        return None
    return {
        "suggestion": {
            key: suggestion.get(key)
            for key in (
                "category",
                "category_confidence",
                "severity",
                "severity_confidence",
                "model_version",
            )
        },
        "chosen": {"category": category, "severity": severity},
        "followed": followed(suggestion, category, severity),
    }


def assess_note(suggestion: dict | None, category: str, severity: str) -> str:
    """The sentence added to the assess event's note."""
    if suggestion is None:
        return ""
    return (
        f"。模型建议：{describe(suggestion)}；"
        f"{followed_text(followed(suggestion, category, severity))}"
    )


def _assessed(session: Session, ticket: Ticket) -> TicketEvent | None:
    return session.scalar(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.action == "assess")
        .order_by(TicketEvent.id.desc())
        .limit(1)
    )


def _awaits_assessment(session: Session, ticket: Ticket) -> bool:
    flow = FLOWS[ticket.ticket_type]
    has_step = any("assess" in moves for moves in flow.values())
    return has_step and ticket.status not in CLOSED_STATUSES and _assessed(session, ticket) is None


def pending_suggestion(session: Session, number: str) -> str | None:
    """For `crm ticket show`: the suggestion for a ticket not yet assessed (or the sentence
    saying no model is trained); None once the ticket is assessed or when its flow has no
    assessment step."""
    ticket = get_ticket(session, number)
    if not _awaits_assessment(session, ticket):
        return None
    suggestion = ask(session, ticket.summary, ticket.ticket_type)
    return describe(suggestion) if suggestion else NO_MODEL


def ticket_suggestion(session: Session, number: str) -> dict:
    """For `crm ticket suggest`: the ticket, the model's suggestion with its confidences and
    version, and for an assessed ticket what staff chose; `note` says when there is no model."""
    ticket = get_ticket(session, number)
    suggestion = ask(session, ticket.summary, ticket.ticket_type)
    out = {
        "number": ticket.number,
        "type": TICKET_TYPES.get(ticket.ticket_type, ticket.ticket_type),
        "summary": ticket.summary,
        "suggested_category": None,
        "category_confidence": None,
        "suggested_severity": None,
        "severity_confidence": None,
        "model_version": None,
        "chosen_category": None,
        "chosen_severity": None,
        "note": None,
    }
    if _assessed(session, ticket) is not None:
        out["chosen_category"] = CATEGORIES.get(ticket.category, ticket.category)
        out["chosen_severity"] = SEVERITIES.get(ticket.severity, ticket.severity)
    if suggestion is None:
        out["note"] = NO_MODEL
        return out
    out |= {
        "suggested_category": CATEGORIES.get(suggestion["category"], suggestion["category"]),
        "category_confidence": round(float(suggestion["category_confidence"]), 4),
        "suggested_severity": SEVERITIES.get(suggestion["severity"], suggestion["severity"]),
        "severity_confidence": round(float(suggestion["severity_confidence"]), 4),
        "model_version": suggestion["model_version"],
    }
    return out


def assessment_outcome(session: Session, number: str) -> dict:
    """For `crm ticket assess`: the staff's choice next to what the model suggested."""
    ticket = get_ticket(session, number)
    event = _assessed(session, ticket)
    details = (event.details if event is not None else None) or {}
    outcome = {
        "category": CATEGORIES.get(ticket.category, ticket.category),
        "severity": SEVERITIES.get(ticket.severity, ticket.severity),
    }
    suggestion = details.get("suggestion")
    if not suggestion:
        return outcome | {"suggestion": "无（" + NO_MODEL.split("：")[0] + "）"}
    return outcome | {
        "suggestion": describe(suggestion),
        "followed": followed_text(details["followed"]),
    }
