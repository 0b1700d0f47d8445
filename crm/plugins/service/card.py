"""The service section of the tracking card: 服务概况."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.core import vocab
from crm.core.card import CardSection
from crm.core.models import Household, ServiceRecord


def year_before(moment: dt.datetime) -> dt.datetime:
    """The same moment twelve months earlier (29 February falls back to the 28th)."""
    try:
        return moment.replace(year=moment.year - 1)
    except ValueError:
        return moment.replace(year=moment.year - 1, day=28)


def service_overview(
    session: Session, household: Household, now: dt.datetime | None = None
) -> CardSection:
    now = now or dt.datetime.now(dt.UTC)
    mine = ServiceRecord.household_id == household.id
    open_by_kind = session.execute(
        select(ServiceRecord.kind, func.count())
        .where(mine, ServiceRecord.status == "open")
        .group_by(ServiceRecord.kind)
    ).all()
    order = list(vocab.SERVICE_KINDS)
    open_text = "，".join(
        f"{vocab.label(vocab.SERVICE_KINDS, kind)} {n}"
        for kind, n in sorted(open_by_kind, key=lambda kn: order.index(kn[0]))
    )
    complaints = session.scalar(
        select(func.count()).where(
            mine, ServiceRecord.kind == "complaint", ServiceRecord.opened_at >= year_before(now)
        )
    )
    # Opening and closing a record are both contact with the household.
    last_opened, last_closed = session.execute(
        select(func.max(ServiceRecord.opened_at), func.max(ServiceRecord.closed_at)).where(mine)
    ).one()
    last = max((t for t in (last_opened, last_closed) if t is not None), default=None)
    return CardSection(
        "服务概况",
        lines=[
            ("处理中的记录", open_text or "无"),
            ("处理中合计", sum(n for _, n in open_by_kind)),
            ("近 12 个月投诉", complaints),
            ("最近联系日期", last),
            ("距最近联系(天)", (now - last).days if last else None),
        ],
    )
