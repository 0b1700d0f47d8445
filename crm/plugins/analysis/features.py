"""Per-household features as of a date, for segments and propensity models.

Purchases, referrals, complaints in the core service register (imported records and service
handling's tickets, each counted once) and the profile come from the core tables, summed by
the database; what other plugins know (the satisfaction gap …) arrives through the
`household_facts` hook, so analysis never reads a plugin's tables. Only households that had bought before the date are described: a prospect
has no recency, frequency or value to segment or score.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from crm.core.clock import day_start
from crm.core.models import Household, Purchase, Referral, ServiceRecord

# Feature name -> how the teams say it. The order is the column order of the matrix.
FEATURES = {
    "recency_days": "距最近购买天数",
    "frequency": "购买次数",
    "value": "购买总额（万元）",
    "tenure_days": "客户时长（天）",
    "complaints": "投诉次数",
    "satisfaction_gap": "满意度差距（体验−期望）",
    "referrals": "推荐户数",
    "member": "万客会会员",
}


@dataclass(frozen=True)
class Features:
    household_ids: np.ndarray  # int64, ascending
    matrix: np.ndarray  # float64, one row per household, columns in FEATURES order
    as_of: dt.date
    # Names of the hook-supplied facts that no plugin answered (their columns are zero).
    missing: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return list(FEATURES)

    def column(self, name: str) -> np.ndarray:
        return self.matrix[:, list(FEATURES).index(name)]


def _fill(ids: np.ndarray, column: np.ndarray, keys: np.ndarray, values: np.ndarray) -> None:
    """column[i] = values[j] where ids[i] == keys[j]; ids sorted, keys need not be."""
    if len(keys) == 0 or len(ids) == 0:
        return
    at = np.searchsorted(ids, keys)
    inside = at < len(ids)
    found = inside.copy()
    found[inside] = ids[at[inside]] == keys[inside]
    column[at[found]] = values[found]


def _pairs(rows) -> tuple[np.ndarray, np.ndarray]:
    rows = list(rows)
    if not rows:
        return np.empty(0, np.int64), np.empty(0)
    keys, values = zip(*rows, strict=True)
    return np.asarray(keys, np.int64), np.asarray([float(v or 0) for v in values])


SLICE = 100_000


def _summary_block(rows, as_of: dt.date) -> np.ndarray:
    """Rows of (household, first day, last day, purchases, amount) as five float columns:
    id, days since the first purchase, days since the last, purchases, amount in 万元."""
    block = np.empty((5, len(rows)))
    block[0] = [row[0] for row in rows]
    block[1] = [(as_of - row[1]).days for row in rows]
    block[2] = [(as_of - row[2]).days for row in rows]
    block[3] = [row[3] for row in rows]
    block[4] = [float(row[4] or 0) / 10_000 for row in rows]
    return block


def household_features(session: Session, as_of: dt.date, pm=None) -> Features:
    """Features of every household with a purchase before `as_of` (that day not included).

    `pm` is the plugin manager asked for `household_facts` (default: the session's)."""
    pm = pm if pm is not None else session.info.get("pm")
    summary = session.execute(
        select(
            Purchase.household_id,
            func.min(Purchase.purchase_date),
            func.max(Purchase.purchase_date),
            func.count(),
            func.sum(Purchase.amount),
        )
        .where(Purchase.purchase_date < as_of)
        .group_by(Purchase.household_id)
        .order_by(Purchase.household_id),
        # Read in slices, each turned into arrays at once: a million result rows held as
        # Python tuples would take most of a gigabyte.
        execution_options={"yield_per": SLICE},
    )
    blocks = [_summary_block(rows, as_of) for rows in summary.partitions()]
    columns = np.concatenate(blocks, axis=1) if blocks else np.empty((5, 0))
    ids = columns[0].astype(np.int64)
    matrix = np.zeros((len(ids), len(FEATURES)))
    if len(ids) == 0:
        return Features(ids, matrix, as_of)
    names = list(FEATURES)
    for name, column in zip(("tenure_days", "recency_days", "frequency", "value"), columns[1:]):
        matrix[:, names.index(name)] = column

    referrals = session.execute(
        select(Referral.referrer_household_id, func.count())
        .where(Referral.referred_on < as_of)
        .group_by(Referral.referrer_household_id)
    )
    _fill(ids, matrix[:, names.index("referrals")], *_pairs(referrals))

    before = day_start(as_of)
    complaints = session.execute(
        select(ServiceRecord.household_id, func.count())
        .where(ServiceRecord.kind == "complaint", ServiceRecord.opened_at < before)
        .group_by(ServiceRecord.household_id)
    )
    _fill(ids, matrix[:, names.index("complaints")], *_pairs(complaints))

    members = session.execute(
        select(Household.id, literal(1)).where(Household.member_tier != "none")
    )
    _fill(ids, matrix[:, names.index("member")], *_pairs(members))

    missing = _add_plugin_facts(session, pm, before, ids, matrix)
    return Features(ids, matrix, as_of, missing)


# Facts other plugins contribute through `household_facts`: each fills in the households a
# plugin answers for and leaves the others as they are.
PLUGIN_FACTS = ("satisfaction_gap",)


def _add_plugin_facts(session, pm, before, ids, matrix) -> tuple[str, ...]:
    answers = pm.hook.household_facts(session=session, until=before) if pm else []
    names = list(FEATURES)
    seen: set[str] = set()
    for facts in answers:
        for name, values in (facts or {}).items():
            if name not in PLUGIN_FACTS:
                continue
            seen.add(name)
            _fill(ids, matrix[:, names.index(name)], *_pairs(values.items()))
    return tuple(sorted(set(PLUGIN_FACTS) - seen))
