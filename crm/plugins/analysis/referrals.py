"""Referral analysis (老带新): the share of sales that came through a referral, the households that
refer most, and referral chains. Aggregation runs in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

from sqlalchemy import (
    Integer,
    String,
    and_,
    case,
    cast,
    exists,
    extract,
    func,
    literal_column,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from crm.core.errors import CrmError
from crm.core.models import Building, Household, Project, Purchase, Referral, Unit
from crm.core.paging import Page, fetch

# DOMAIN.md "Reference figures" [002]: 30–50% of sales come from existing owners' referrals.
REFERENCE_LOW = 0.30
REFERENCE_HIGH = 0.50
REFERENCE_TEXT = "30%–50%（两个项目超过 40%，最高 50%）"
GROUPINGS = ("project", "year", "quarter")
ALL_PROJECTS = "全部项目"
ALL_PERIODS = "全部时间"
NO_PROJECT = "（未知项目）"


def is_referral_sale():
    """A purchase came through a referral when it names a referrer, was sold through the
    referral channel, or is the purchase a referral register entry points to."""
    registered = select(Referral.purchase_id).where(Referral.purchase_id.is_not(None))
    return or_(
        Purchase.referrer_household_id.is_not(None),
        Purchase.channel == "referral",
        Purchase.id.in_(registered),
    )


def flag(share: float | None) -> str:
    if share is None:
        return ""
    if share < REFERENCE_LOW:
        return "低于参考区间"
    if share > REFERENCE_HIGH:
        return "高于参考区间"
    return ""


def _shares(row: dict) -> dict:
    sales, amount = row["sales"], row["amount"]
    row["share"] = round(row["referral_sales"] / sales, 4) if sales else None
    row["amount_share"] = round(float(row["referral_amount"] / amount), 4) if amount else None
    row["reference"] = REFERENCE_TEXT
    row["flag"] = flag(row["share"])
    return row


def referral_share(
    session: Session,
    by: str = "project",
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> list[dict]:
    """Sales and referral sales (count and amount) per project, or per project and year or
    quarter, then the totals per period and over everything, each flagged against the band."""
    if by not in GROUPINGS:
        raise CrmError(f"分组方式“{by}”无效：请用 project、year 或 quarter。")
    if since and until and since > until:
        raise CrmError("起始日期晚于截止日期：请调换两个日期。")
    project_id = func.coalesce(Building.project_id, Household.project_id)
    project = func.coalesce(Project.name, NO_PROJECT).label("project")
    referral = is_referral_sale()
    year = cast(extract("year", Purchase.purchase_date), Integer)
    month = cast(extract("month", Purchase.purchase_date), Integer)
    quarter = case((month <= 3, 1), (month <= 6, 2), (month <= 9, 3), else_=4)
    keys = {"project": [], "year": [year.label("y")], "quarter": [year.label("y"), quarter]}[by]
    keys = [project, *(key.label(f"k{i}") for i, key in enumerate(keys))]
    query = (
        select(
            *keys,
            func.count(Purchase.id),
            func.sum(case((referral, 1), else_=0)),
            func.coalesce(func.sum(Purchase.amount), 0),
            func.coalesce(func.sum(case((referral, Purchase.amount), else_=0)), 0),
        )
        .join(Household, Household.id == Purchase.household_id)
        .outerjoin(Unit, Unit.id == Purchase.unit_id)
        .outerjoin(Building, Building.id == Unit.building_id)
        .outerjoin(Project, Project.id == project_id)
        .group_by(*keys)
    )
    if since:
        query = query.where(Purchase.purchase_date >= since)
    if until:
        query = query.where(Purchase.purchase_date <= until)
    groups = []
    for name, *rest in session.execute(query):
        parts, (sales, referred, amount, referred_amount) = rest[:-4], rest[-4:]
        period = (
            ALL_PERIODS
            if by == "project"
            else str(parts[0])
            if by == "year"
            else f"{parts[0]}Q{parts[1]}"
        )
        groups.append(
            {
                "project": name,
                "period": period,
                "sales": int(sales),
                "referral_sales": int(referred),
                "amount": Decimal(amount),
                "referral_amount": Decimal(referred_amount),
            }
        )
    groups.sort(key=lambda r: (r["period"], r["project"]))
    totals: dict[str, dict] = {}
    if by != "project":
        for row in groups:
            _add(totals, row["period"], row)
    grand: dict[str, dict] = {}
    for row in groups:
        _add(grand, ALL_PERIODS, row)
    return [_shares(row) for row in [*groups, *totals.values(), *grand.values()]]


def _add(into: dict[str, dict], period: str, row: dict) -> None:
    total = into.setdefault(
        period,
        {
            "project": ALL_PROJECTS,
            "period": period,
            "sales": 0,
            "referral_sales": 0,
            "amount": Decimal(0),
            "referral_amount": Decimal(0),
        },
    )
    for key in ("sales", "referral_sales", "amount", "referral_amount"):
        total[key] += row[key]


def _links():
    """Every known referral as (referrer, referred, purchase_id, day): from the referral register
    and from purchases naming a referrer. A household naming itself is not a referral."""
    bought = aliased(Purchase)
    from_purchases = select(
        Purchase.referrer_household_id.label("referrer"),
        Purchase.household_id.label("referred"),
        Purchase.id.label("purchase_id"),
        Purchase.purchase_date.label("day"),
    ).where(
        Purchase.referrer_household_id.is_not(None),
        Purchase.referrer_household_id != Purchase.household_id,
    )
    from_register = (
        select(
            Referral.referrer_household_id,
            Referral.referred_household_id,
            Referral.purchase_id,
            func.coalesce(Referral.referred_on, bought.purchase_date),
        )
        .outerjoin(bought, bought.id == Referral.purchase_id)
        .where(Referral.referrer_household_id != Referral.referred_household_id)
    )
    return union_all(from_purchases, from_register).subquery("links")


def top_referrers(session: Session, limit: int = 20, offset: int = 0) -> Page:
    """The households whose referrals brought the most buyers (then the most money): referred
    buyers, referred sales, first and last referral, and whether the referrer bought again.
    Only codes and household names: no personal data. One page of the ranking, with how many
    households referred anyone."""
    if limit < 1:
        raise CrmError("显示条数至少为 1。")
    links = _links()
    # A purchase can be recorded both on the purchase and in the register: count it once.
    referred_purchases = (
        select(links.c.referrer, links.c.purchase_id)
        .where(links.c.purchase_id.is_not(None))
        .distinct()
        .subquery()
    )
    amounts = (
        select(
            referred_purchases.c.referrer,
            func.sum(Purchase.amount).label("amount"),
        )
        .join(Purchase, Purchase.id == referred_purchases.c.purchase_id)
        .group_by(referred_purchases.c.referrer)
        .subquery()
    )
    per_referrer = (
        select(
            links.c.referrer,
            func.count(func.distinct(links.c.referred)).label("referred"),
            func.count(
                func.distinct(case((links.c.purchase_id.is_not(None), links.c.referred)))
            ).label("buyers"),
            func.min(links.c.day).label("first_day"),
            func.max(links.c.day).label("last_day"),
        )
        .group_by(links.c.referrer)
        .subquery()
    )
    own = (
        select(Purchase.household_id, func.count(Purchase.id).label("purchases"))
        .group_by(Purchase.household_id)
        .subquery()
    )
    amount = func.coalesce(amounts.c.amount, 0)
    query = (
        select(
            Household.code,
            Household.name,
            per_referrer.c.referred,
            per_referrer.c.buyers,
            amount,
            per_referrer.c.first_day,
            per_referrer.c.last_day,
            func.coalesce(own.c.purchases, 0),
        )
        .join(per_referrer, per_referrer.c.referrer == Household.id)
        .outerjoin(amounts, amounts.c.referrer == Household.id)
        .outerjoin(own, own.c.household_id == Household.id)
        .order_by(per_referrer.c.buyers.desc(), amount.desc(), Household.code)
    )
    page = fetch(session, query, limit, offset)
    rows = [
        {
            "rank": rank,
            "household": code,
            "name": name,
            "referred": int(referred),
            "buyers": int(buyers),
            "referred_amount": Decimal(total),
            "first_referral": first,
            "last_referral": last,
            "own_purchases": int(purchases),
            "bought_again": int(purchases) >= 2,
        }
        for rank, (code, name, referred, buyers, total, first, last, purchases) in enumerate(
            page, offset + 1
        )
    ]
    return Page(rows, page.total, offset, limit)


def referral_chains(
    session: Session, min_length: int = 2, limit: int = 20, offset: int = 0
) -> dict:
    """Referral chains (A referred B, who referred C …) found with a recursive CTE. A chain runs
    from a household nobody on it was referred by to one that referred nobody further; a path
    never visits a household twice, so a cycle in the data ends the chain instead of looping.
    Returns the longest chains (with their members' total purchases; `offset` skips the
    first ones) and the length distribution, both counted in households."""
    if min_length < 2:
        raise CrmError("链长至少为 2（推荐人与被推荐人）。")
    if limit < 1:
        raise CrmError("显示条数至少为 1。")
    links = _links()
    edges = (
        select(links.c.referrer.label("src"), links.c.referred.label("dst")).distinct().cte("edges")
    )
    later, earlier = edges.alias("later"), edges.alias("earlier")

    def mark(node):
        return "/" + cast(node, String) + "/"

    chain = select(
        edges.c.src.label("start"),
        edges.c.dst.label("last"),
        literal_column("2", Integer).label("length"),
        ("/" + cast(edges.c.src, String) + mark(edges.c.dst)).label("path"),
    ).cte("chain", recursive=True)
    chain = chain.union_all(
        select(
            chain.c.start,
            edges.c.dst,
            chain.c.length + 1,
            chain.c.path + cast(edges.c.dst, String) + "/",
        )
        .join(edges, edges.c.src == chain.c.last)
        .where(not_(chain.c.path.contains(mark(edges.c.dst))))
    )
    extends_after = exists().where(
        and_(later.c.src == chain.c.last, not_(chain.c.path.contains(mark(later.c.dst))))
    )
    extends_before = exists().where(
        and_(earlier.c.dst == chain.c.start, not_(chain.c.path.contains(mark(earlier.c.src))))
    )
    loops = exists().where(
        and_(later.c.src == chain.c.last, chain.c.path.contains(mark(later.c.dst)))
    )
    rows = session.execute(
        select(chain.c.length, chain.c.path, loops)
        .where(not_(extends_after), not_(extends_before), chain.c.length >= min_length)
        .order_by(chain.c.length.desc(), chain.c.path)
    ).all()
    chains: list[tuple[int, list[int], bool]] = []
    kept: dict[int, list[frozenset[int]]] = {}
    for length, path, cyclic in rows:
        nodes = [int(part) for part in path.strip("/").split("/")]
        members = frozenset(nodes)
        # Inside a cycle every rotation looks maximal; keep only the first, longest, reading.
        if cyclic and any(members <= other for other in kept.get(nodes[0], ())):
            continue
        for node in nodes:
            kept.setdefault(node, []).append(members)
        chains.append((int(length), nodes, bool(cyclic)))
    distribution = Counter(length for length, _, _ in chains)
    shown = chains[offset : offset + limit]
    members = {node for _, nodes, _ in shown for node in nodes}
    households = {
        hid: (code, name)
        for hid, code, name in session.execute(
            select(Household.id, Household.code, Household.name).where(Household.id.in_(members))
        )
    }
    spent = dict(
        session.execute(
            select(Purchase.household_id, func.sum(Purchase.amount))
            .where(Purchase.household_id.in_(members))
            .group_by(Purchase.household_id)
        ).all()
    )
    listed = [
        {
            "rank": rank,
            "length": length,
            "chain": [households[node][0] for node in nodes],
            "names": [households[node][1] for node in nodes],
            "sales": sum((Decimal(spent.get(node) or 0) for node in nodes), Decimal(0)),
            "cycle": cyclic,
        }
        for rank, (length, nodes, cyclic) in enumerate(shown, offset + 1)
    ]
    return {
        "chains": listed,
        "distribution": [
            {"length": length, "chains": count}
            for length, count in sorted(distribution.items(), reverse=True)
        ],
        "total_chains": len(chains),
    }
