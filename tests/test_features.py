"""Household features as of a date, counted by hand on a planted portfolio:

A buys 1,000,000 on 2024-01-10 and 2,000,000 on 2025-06-01, is a club member, refers B
(2024-02-15), had a complaint record in 2024 and one complaint ticket reported by the plugin.
B buys 500,000 on 2024-03-01. C only enquires (a prospect): no features.
Another plugin reports satisfaction gaps through `household_facts`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from crm import hookimpl
from crm.core.db import transaction
from crm.core.models import Household, Purchase, Referral, ServiceRecord
from crm.plugins.analysis.features import FEATURES, household_features

D = dt.date
UTC = dt.UTC


@pytest.fixture
def homes(session):
    with transaction(session):
        a = Household(code="F001", name="甲家", member_tier="gold")
        b = Household(code="F002", name="乙家")
        c = Household(code="F003", name="丙家")
        session.add_all([a, b, c])
        session.flush()
        for no, who, day, amount in (
            (1, a, D(2024, 1, 10), 1_000_000),
            (2, b, D(2024, 3, 1), 500_000),
            (3, a, D(2025, 6, 1), 2_000_000),
        ):
            session.add(
                Purchase(
                    contract_no=f"FT{no}",
                    household_id=who.id,
                    purchase_date=day,
                    amount=Decimal(amount),
                    referrer_household_id=a.id if who is b else None,
                )
            )
        session.add(
            Referral(
                referrer_household_id=a.id, referred_household_id=b.id, referred_on=D(2024, 2, 15)
            )
        )
        session.add(
            ServiceRecord(
                record_no="TS1",
                household_id=a.id,
                kind="complaint",
                opened_at=dt.datetime(2024, 5, 1, 2, tzinfo=UTC),
                summary="漏水",
            )
        )
        # A ticket's entry in the register, as service handling keeps it.
        session.add(
            ServiceRecord(
                record_no="TS20240601-0001",
                household_id=a.id,
                kind="complaint",
                opened_at=dt.datetime(2024, 6, 1, 2, tzinfo=UTC),
                summary="又漏水",
                managed_by="service",
            )
        )
    return {"A": a.id, "B": b.id, "C": c.id}


class FactsPlugin:
    """Stands in for service handling and satisfaction monitoring."""

    def __init__(self, ids):
        self.ids = ids
        self.asked = []

    @hookimpl
    def household_facts(self, session, until):
        self.asked.append(until)
        return {
            "complaints": {self.ids["A"]: 1.0},
            "satisfaction_gap": {self.ids["A"]: -1.5, self.ids["B"]: 0.5, 99999: 3.0},
            "unknown_fact": {self.ids["A"]: 7.0},
        }


def row(features, household_id):
    index = list(features.household_ids).index(household_id)
    return dict(zip(FEATURES, features.matrix[index], strict=True))


def test_features_count_what_happened_before_the_date(app, session, homes):
    plugin = FactsPlugin(homes)
    app.pm.register(plugin)
    features = household_features(session, D(2025, 1, 1))

    assert list(features.household_ids) == sorted([homes["A"], homes["B"]])  # C never bought
    a, b = row(features, homes["A"]), row(features, homes["B"])
    assert a == {
        "recency_days": (D(2025, 1, 1) - D(2024, 1, 10)).days,
        "frequency": 1,  # the 2025-06-01 purchase is after the date
        "value": 100.0,  # in 万元
        "tenure_days": (D(2025, 1, 1) - D(2024, 1, 10)).days,
        # The imported record and the ticket's register entry, each once: a plugin's own
        # count of the same complaints is not added on top.
        "complaints": 2,
        "satisfaction_gap": -1.5,
        "referrals": 1,
        "member": 1,
    }
    assert b["frequency"] == 1 and b["value"] == 50.0 and b["referrals"] == 0
    assert b["satisfaction_gap"] == 0.5 and b["member"] == 0 and b["complaints"] == 0
    assert features.missing == ()
    # The plugin is asked about the time before the local start of the day.
    assert plugin.asked[0].astimezone(UTC) == dt.datetime(2024, 12, 31, 16, tzinfo=UTC)


def test_later_date_sees_later_purchases_and_names_unanswered_facts(app, session, homes):
    app.pm.unregister(name="service")
    app.pm.unregister(name="satisfaction")
    features = household_features(session, D(2025, 6, 2))
    a = row(features, homes["A"])
    assert a["frequency"] == 2 and a["value"] == 300.0 and a["recency_days"] == 1
    assert a["complaints"] == 2 and a["satisfaction_gap"] == 0
    assert features.missing == ("satisfaction_gap",)


def test_no_buyers_gives_an_empty_matrix(session, homes):
    features = household_features(session, D(2020, 1, 1))
    assert features.matrix.shape == (0, len(FEATURES))
