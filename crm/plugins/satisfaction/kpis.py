"""KPIs per project, team, category, month or cause, computed by the database.

By cause (why the customer complained, recorded at a complaint's feedback step): the surveys
of the complaints with that cause and the complaints themselves, each under every cause it
has; complaints with no cause yet go under （未归属）; legacy records and surveys of no
complaint have no cause and stay out.

From surveys: satisfaction rate (share of CSAT >= 4), NPS (% promoters 9-10 minus % detractors
0-6) and the mean gap (experience − expectation, over every answered aspect). From the service
register: the requests of each group, each counted once, whether a ticket of service handling
(through its `ticket_statistics` hook: timeliness, revisits, times to reply and to close) or a
legacy record imported into the core register (closure and time to close; a legacy record has
no time limit nor revisit on file, so timeliness and the revisit rate are over tickets only).
Only aggregated rows (one per group) ever reach Python.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.orm import Session

from crm.core.errors import CrmError
from crm.core.figures import MINUTES, NPS, RATE, SCORE
from crm.core.models import Building, Household, Project, ServiceRecord, Unit
from crm.core.sqltime import minutes_between, month_of
from crm.core.vocab import COMPLAINT_CAUSES
from crm.plugins.satisfaction.models import Survey, TicketCause
from crm.plugins.satisfaction.surveys import CATEGORIES

GROUPINGS = {
    "project": "项目",
    "team": "班组",
    "category": "类别",
    "month": "月份",
    "cause": "投诉原因",
}
UNGROUPED = "（未归属）"

COLUMNS = [
    ("label", "分组"),
    ("surveys", "问卷数"),
    ("satisfaction_rate", "满意率", RATE),
    ("nps", "NPS", NPS),
    ("mean_gap", "平均差距", SCORE),
    ("tickets", "服务登记数"),
    ("legacy", "其中历史记录"),
    ("closed", "已关闭"),
    ("timeliness_rate", "及时率", RATE),
    ("closure_rate", "关闭率", RATE),
    ("revisit_rate", "回访率", RATE),
    ("mean_reply_minutes", "平均响应(分钟)", MINUTES),
    ("mean_arrive_minutes", "平均到场(分钟)", MINUTES),
    ("mean_close_minutes", "平均关闭(分钟)", MINUTES),
]
RATES = ("satisfaction_rate", "timeliness_rate", "closure_rate", "revisit_rate")


def _survey_key(session: Session, group_by: str) -> ColumnElement:
    if group_by == "month":
        return month_of(session, Survey.taken_at)
    if group_by == "cause":
        return TicketCause.cause
    return {"project": Survey.project_id, "team": Survey.team, "category": Survey.category}[
        group_by
    ]


def _within(query, since: dt.datetime | None, until: dt.datetime | None):
    if since is not None:
        query = query.where(Survey.taken_at >= since)
    if until is not None:
        query = query.where(Survey.taken_at < until)
    return query


def _float(value) -> float | None:
    return None if value is None else float(value)


def survey_statistics(
    session: Session,
    group_by: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> dict:
    """Group key -> surveys, satisfaction rate, NPS and mean gap, for surveys in [since, until)."""
    key = _survey_key(session, group_by)
    # AVG skips NULLs, so unanswered questions drop out of each rate's denominator.
    satisfied = case((Survey.csat >= 4, 1.0), (Survey.csat.is_not(None), 0.0))
    promoter = case((Survey.nps >= 9, 100.0), (Survey.nps <= 6, -100.0), (Survey.nps >= 0, 0.0))
    query = _within(
        select(
            key.label("key"),
            func.count().label("surveys"),
            func.avg(satisfied).label("satisfaction_rate"),
            func.avg(promoter).label("nps"),
            (
                func.sum(Survey.gap_total) * 1.0 / func.nullif(func.sum(Survey.aspect_count), 0)
            ).label("mean_gap"),
        ).group_by(key),
        since,
        until,
    )
    if group_by == "cause":
        query = query.join(TicketCause, TicketCause.ticket_number == Survey.ticket_number)
    return {
        row.key: {
            "surveys": int(row.surveys),
            "satisfaction_rate": _float(row.satisfaction_rate),
            "nps": _float(row.nps),
            "mean_gap": _float(row.mean_gap),
        }
        for row in session.execute(query)
    }


def _ratio(part: float | None, whole: float | None) -> float | None:
    return None if part is None or not whole else part / whole


def _sum(*values) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def legacy_statistics(
    session: Session,
    group_by: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> dict:
    """Group key -> records, closed and minutes to close of the legacy records in the core
    service register (entries no plugin keeps), opened in [since, until). They have no team
    nor category: those groupings put them under （未归属）; nor a cause: that grouping
    leaves them out."""
    if group_by == "cause":
        return {}
    closed = ServiceRecord.status == "closed"
    project = func.coalesce(Building.project_id, Household.project_id)
    # No team nor category: one group, under no key (PostgreSQL refuses GROUP BY a constant).
    key = {
        "project": project,
        "team": None,
        "category": None,
        "month": month_of(session, ServiceRecord.opened_at) if group_by == "month" else None,
    }[group_by]
    query = (
        select(
            (key if key is not None else literal(None)).label("key"),
            func.count().label("records"),
            func.sum(case((closed, 1), else_=0)).label("closed"),
            func.sum(
                case(
                    (
                        closed,
                        minutes_between(session, ServiceRecord.opened_at, ServiceRecord.closed_at),
                    )
                )
            ).label("close_minutes"),
            func.count(case((closed, ServiceRecord.closed_at))).label("closed_timed"),
        )
        .select_from(ServiceRecord)
        .join(Household, Household.id == ServiceRecord.household_id)
        .outerjoin(Unit, Unit.id == ServiceRecord.unit_id)
        .outerjoin(Building, Building.id == Unit.building_id)
        .where(ServiceRecord.managed_by.is_(None))
    )
    if key is not None:
        query = query.group_by(key)
    if since is not None:
        query = query.where(ServiceRecord.opened_at >= since)
    if until is not None:
        query = query.where(ServiceRecord.opened_at < until)
    return {
        row.key: {
            "records": int(row.records),
            "closed": int(row.closed or 0),
            "close_minutes": _float(row.close_minutes),
            "closed_timed": int(row.closed_timed or 0),
        }
        for row in session.execute(query)
        if row.records  # an ungrouped count over no rows is one row of zeros
    }


def _service_kpis(tickets: dict | None, legacy: dict | None) -> dict:
    """The register's KPIs of one group: tickets and legacy records together, each once."""
    t = tickets or {}
    old = legacy or {}
    records = t.get("tickets", 0) + old.get("records", 0)
    closed = t.get("closed", 0) + old.get("closed", 0)
    return {
        "tickets": records,
        "legacy": old.get("records", 0),
        "closed": closed,
        "timeliness_rate": _ratio(t.get("on_time"), t.get("closed")),
        "closure_rate": _ratio(closed, records),
        "revisit_rate": _ratio(t.get("revisited"), t.get("closed")),
        "mean_reply_minutes": _ratio(t.get("reply_minutes"), t.get("replied")),
        "mean_arrive_minutes": _ratio(t.get("arrive_minutes"), t.get("arrived")),
        "mean_close_minutes": _ratio(
            _sum(t.get("close_minutes"), old.get("close_minutes")),
            t.get("closed_timed", 0) + old.get("closed_timed", 0),
        ),
    }


def kpi_report(
    session: Session,
    group_by: str = "project",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[dict]:
    """One row per project, team, category or month with every KPI (None where no data)."""
    if group_by not in GROUPINGS:
        raise CrmError(f"不支持按“{group_by}”分组；可用：{'、'.join(GROUPINGS)}。")
    if since is not None and until is not None and since >= until:
        raise CrmError("起始日期必须早于截止日期。")
    surveys = survey_statistics(session, group_by, since, until)
    pm = session.info.get("pm")
    ticket_rows = (
        pm.hook.ticket_statistics(session=session, group_by=group_by, since=since, until=until)
        if pm is not None
        else None
    ) or []
    tickets = {row["key"]: row for row in ticket_rows}
    legacy = legacy_statistics(session, group_by, since, until)
    keys = set(surveys) | set(tickets) | set(legacy)
    labels = _labels(session, group_by, keys, tickets)
    empty = {"surveys": 0, "satisfaction_rate": None, "nps": None, "mean_gap": None}
    rows = [
        {"key": key, "label": labels[key]}
        | surveys.get(key, empty)
        | _service_kpis(tickets.get(key), legacy.get(key))
        for key in keys
    ]
    rows.sort(key=lambda row: (row["key"] is None, str(row["label"])))
    for row in rows:
        for name, value in row.items():
            if isinstance(value, float):
                row[name] = round(value, 4 if name in RATES else 2)
    return rows


def _labels(session: Session, group_by: str, keys: set, tickets: dict) -> dict:
    if group_by == "project":
        names = dict(
            session.execute(
                select(Project.id, Project.name).where(Project.id.in_(k for k in keys if k))
            ).all()
        )
    elif group_by == "team":
        names = {key: row.get("label") for key, row in tickets.items()}
    elif group_by == "category":
        names = dict(CATEGORIES)
    elif group_by == "cause":
        names = dict(COMPLAINT_CAUSES)
    else:
        names = {}
    return {key: UNGROUPED if key is None else names.get(key) or str(key) for key in keys}
