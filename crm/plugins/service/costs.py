"""What serving each household took, summed by the database for profitability assessment
(the `household_service_costs` hook): tickets by severity, their handling minutes, the repair
fees charged, what work orders and reward activities cost, and the 一路同行 loyalty fund's
spending on each household less its own contributions (fund.py says how it is shared).

One statement: each source contributes rows in the same shape, UNION ALL joins them, and the
outer query sums per household, so a million tickets never reach Python one by one.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, and_, case, cast, func, literal, select, true, union_all
from sqlalchemy.orm import Session

from crm.core.models import Household
from crm.core.sqltime import minutes_between
from crm.plugins.service.fund import INFLOWS
from crm.plugins.service.models import (
    ActivitySignup,
    LoyaltyFundEntry,
    RewardActivity,
    Ticket,
    WorkOrder,
)

SEVERITIES = ("general", "important", "hot", "major")
MONEY = ("repair_fees", "repair_cost", "compensation", "gifts", "campaign_cost", "loyalty_fund")
COLUMNS = (*(f"tickets_{s}" for s in SEVERITIES), "handling_minutes", *MONEY)


def _window(column, since: dt.datetime | None, until: dt.datetime | None):
    conditions = []
    if since is not None:
        conditions.append(column >= since)
    if until is not None:
        conditions.append(column < until)
    return and_(true(), *conditions)


def _row(household_id, **values):
    """A select list in the shared shape: every column, zero where this source has none."""
    zero = literal(0.0, Float)
    return [household_id.label("household_id")] + [
        cast(values.get(name, zero), Float).label(name) for name in COLUMNS
    ]


def household_service_costs(
    session: Session, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> list[dict]:
    """Per household with any service in [since, until): ticket counts by severity, minutes
    from opening to closing of closed tickets, repair fees charged (paid repairs), and the
    cost of work orders by kind (repair, compensation, gift) and of reward activities shared
    among the households that took part."""
    one = literal(1.0, Float)
    tickets = select(
        *_row(
            Ticket.household_id,
            **{
                f"tickets_{s}": func.sum(case((Ticket.severity == s, one), else_=0.0))
                for s in SEVERITIES
            },
            handling_minutes=func.coalesce(
                func.sum(minutes_between(session, Ticket.opened_at, Ticket.closed_at)), 0.0
            ),
            repair_fees=func.sum(
                case(
                    (
                        and_(Ticket.paid.is_(True), Ticket.fee_amount.is_not(None)),
                        Ticket.fee_amount,
                    ),
                    else_=0.0,
                )
            ),
        )
    ).where(_window(Ticket.opened_at, since, until))
    tickets = tickets.group_by(Ticket.household_id)

    spent = func.coalesce(WorkOrder.cost, 0.0)
    # Work orders name their household (a ticket's, or a task's such as compensation or a
    # gift that coordination gave).
    orders = (
        select(
            *_row(
                WorkOrder.household_id,
                **{
                    column: func.sum(case((kind, spent), else_=0.0))
                    for column, kind in (
                        (
                            "repair_cost",
                            func.coalesce(WorkOrder.cost_kind, WorkOrder.kind) == "repair",
                        ),
                        ("compensation", WorkOrder.cost_kind == "compensation"),
                        ("gifts", WorkOrder.cost_kind == "gift"),
                    )
                },
            )
        )
        .where(
            WorkOrder.household_id.is_not(None),
            WorkOrder.cost.is_not(None),
            WorkOrder.status != "cancelled",
            _window(func.coalesce(WorkOrder.completed_at, WorkOrder.created_at), since, until),
        )
        .group_by(WorkOrder.household_id)
    )

    # Those who did not turn up (attended false) do not share an activity's cost.
    took_part = ActivitySignup.attended.is_not(False)
    shares = (
        select(
            ActivitySignup.activity_id,
            (func.max(RewardActivity.cost) * 1.0 / func.count()).label("share"),
        )
        .join(RewardActivity, RewardActivity.id == ActivitySignup.activity_id)
        .where(
            took_part,
            RewardActivity.cost.is_not(None),
            _window(RewardActivity.held_at, since, until),
        )
        .group_by(ActivitySignup.activity_id)
        .subquery()
    )
    activities = (
        select(*_row(ActivitySignup.household_id, campaign_cost=func.sum(shares.c.share)))
        .join(shares, shares.c.activity_id == ActivitySignup.activity_id)
        .where(took_part)
        .group_by(ActivitySignup.household_id)
    )

    # The loyalty fund: lines that paid for an activity or a work order are costed above.
    fund = LoyaltyFundEntry
    own = and_(
        fund.activity_id.is_(None), fund.work_order_id.is_(None), _window(fund.at, since, until)
    )
    outflow = fund.kind.not_in(INFLOWS)
    given = (
        select(
            *_row(
                fund.household_id,
                loyalty_fund=func.sum(
                    case((fund.kind == "contribution", -fund.amount), else_=fund.amount)
                ),
            )
        )
        .where(own, fund.household_id.is_not(None), outflow | (fund.kind == "contribution"))
        .group_by(fund.household_id)
    )
    # A project's spending that names no household is shared among its households.
    project_spent = (
        select(fund.project_id, func.sum(fund.amount).label("spent"))
        .where(own, fund.household_id.is_(None), outflow)
        .group_by(fund.project_id)
        .subquery()
    )
    project_size = (
        select(Household.project_id, func.count().label("households"))
        .group_by(Household.project_id)
        .subquery()
    )
    shared = (
        select(
            *_row(
                Household.id,
                loyalty_fund=project_spent.c.spent * 1.0 / project_size.c.households,
            )
        )
        .join(project_spent, project_spent.c.project_id == Household.project_id)
        .join(project_size, project_size.c.project_id == Household.project_id)
    )

    parts = union_all(tickets, orders, activities, given, shared).subquery()
    query = (
        select(parts.c.household_id, *(func.sum(parts.c[name]).label(name) for name in COLUMNS))
        .group_by(parts.c.household_id)
        .order_by(parts.c.household_id)
    )
    return [
        {
            "household_id": row.household_id,
            **{name: float(row[i + 1]) for i, name in enumerate(COLUMNS)},
        }
        for row in session.execute(query)
    ]
