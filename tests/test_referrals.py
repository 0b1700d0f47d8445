"""Referral analysis on a small hand-built portfolio whose figures are counted by hand:

东区 (P1): A buys 1000 direct; B buys 2000 naming referrer A (also in the register A→B);
           C buys 3000 through the referral channel (register B→C).
西区 (P2): D buys 4000 direct (no unit: the project comes from the household); A buys again
           5000; E buys 6000 (register A→E only); G buys 7000 naming referrer F.
Register G→F and H→F without a purchase: F and G refer each other, a cycle entered from H.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.core.models import Building, Household, Project, Purchase, Referral, Unit
from crm.plugins.analysis.referrals import referral_chains, referral_share, top_referrers

D = dt.date


@pytest.fixture
def portfolio(session):
    with transaction(session):
        east, west = Project(name="东区"), Project(name="西区")
        units = {}
        for project in (east, west):
            building = Building(project=project, name="1栋")
            for n in range(1, 5):
                units[(project.name, n)] = Unit(building=building, code=f"1-{n}0{n}")
        homes = {
            key: Household(code=f"R00{i}", name=f"{key}家", project=east if key in "ABC" else west)
            for i, key in enumerate("ABCDEFGH", 1)
        }
        session.add_all([east, west, *homes.values()])
        session.flush()

        def buy(no, who, unit, day, amount, channel=None, referrer=None):
            purchase = Purchase(
                contract_no=f"HT{no}",
                household=homes[who],
                unit=units[unit] if unit else None,
                purchase_date=day,
                amount=Decimal(amount),
                channel=channel,
                referrer_household_id=homes[referrer].id if referrer else None,
            )
            session.add(purchase)
            return purchase

        buy(1, "A", ("东区", 1), D(2024, 1, 10), 1000, "walk_in")
        b = buy(2, "B", ("东区", 2), D(2024, 3, 1), 2000, referrer="A")
        c = buy(3, "C", ("东区", 3), D(2024, 5, 1), 3000, "referral")
        buy(4, "D", None, D(2025, 2, 1), 4000, "ad")
        buy(5, "A", ("西区", 1), D(2025, 6, 1), 5000)
        e = buy(6, "E", ("西区", 2), D(2025, 7, 1), 6000)
        buy(7, "G", ("西区", 3), D(2025, 8, 1), 7000, referrer="F")
        session.flush()

        def refer(src, dst, purchase=None, on=None):
            session.add(
                Referral(
                    referrer_household_id=homes[src].id,
                    referred_household_id=homes[dst].id,
                    purchase_id=purchase.id if purchase else None,
                    referred_on=on,
                )
            )

        refer("A", "B", b, D(2024, 2, 15))
        refer("B", "C", c, D(2024, 4, 20))
        refer("A", "E", e)
        refer("G", "F", on=D(2025, 9, 1))
        refer("H", "F", on=D(2025, 10, 1))
    return homes


def _by(rows, project, period):
    return next(r for r in rows if r["project"] == project and r["period"] == period)


def test_share_per_project_counts_every_referral_mark_once(session, portfolio):
    rows = referral_share(session, "project")
    east, west, total = (_by(rows, p, "全部时间") for p in ("东区", "西区", "全部项目"))
    assert (east["sales"], east["referral_sales"]) == (3, 2)
    assert (east["amount"], east["referral_amount"]) == (Decimal(6000), Decimal(5000))
    assert east["share"] == pytest.approx(0.6667) and east["flag"] == "高于参考区间"
    assert (west["sales"], west["referral_sales"]) == (4, 2)
    assert west["share"] == 0.5 and west["flag"] == ""  # the band's top is still inside it
    assert west["amount_share"] == pytest.approx(13000 / 22000, abs=1e-4)
    assert (total["sales"], total["referral_sales"], total["referral_amount"]) == (
        7,
        4,
        Decimal(18000),
    )
    assert len(rows) == 3


def test_share_by_quarter_and_date_range(session, portfolio):
    rows = referral_share(session, "quarter")
    assert (_by(rows, "东区", "2024Q1")["sales"], _by(rows, "东区", "2024Q1")["share"]) == (2, 0.5)
    assert _by(rows, "西区", "2025Q1")["flag"] == "低于参考区间"
    assert _by(rows, "西区", "2025Q3")["referral_sales"] == 2
    assert _by(rows, "全部项目", "2024Q2")["share"] == 1.0
    years = referral_share(session, "year", since=D(2025, 1, 1), until=D(2025, 6, 30))
    assert [(r["project"], r["period"], r["sales"]) for r in years] == [
        ("西区", "2025", 2),
        ("全部项目", "2025", 2),
        ("全部项目", "全部时间", 2),
    ]
    with pytest.raises(CrmError, match="晚于"):
        referral_share(session, "year", since=D(2025, 2, 1), until=D(2025, 1, 1))


def test_top_referrers(session, portfolio):
    rows = top_referrers(session, limit=10)
    assert [r["household"] for r in rows] == ["R001", "R006", "R002", "R007", "R008"]
    a = rows[0]
    assert (a["name"], a["referred"], a["buyers"]) == ("A家", 2, 2)
    assert a["referred_amount"] == Decimal(8000)  # B's purchase is both marked and registered
    assert (a["first_referral"], a["last_referral"]) == (D(2024, 2, 15), D(2025, 7, 1))
    assert (a["own_purchases"], a["bought_again"]) == (2, True)
    f = rows[1]
    assert (f["buyers"], f["referred_amount"], f["own_purchases"], f["bought_again"]) == (
        1,
        Decimal(7000),
        0,
        False,
    )
    assert rows[3]["buyers"] == 0 and rows[3]["referred_amount"] == 0
    assert [r["household"] for r in top_referrers(session, limit=2)] == ["R001", "R006"]


def test_chains_follow_referrals_and_stop_at_a_cycle(session, portfolio):
    result = referral_chains(session)
    chains = {tuple(c["chain"]): c for c in result["chains"]}
    assert set(chains) == {("R001", "R002", "R003"), ("R008", "R006", "R007"), ("R001", "R005")}
    abc = chains[("R001", "R002", "R003")]
    assert (abc["length"], abc["sales"], abc["cycle"]) == (3, Decimal(11000), False)
    assert abc["names"] == ["A家", "B家", "C家"]
    assert chains[("R008", "R006", "R007")]["cycle"] is True
    assert result["distribution"] == [{"length": 3, "chains": 2}, {"length": 2, "chains": 1}]
    longer = referral_chains(session, min_length=3)
    assert result["total_chains"] == 3 and longer["total_chains"] == 2


def test_a_cycle_nobody_enters_is_reported_once(session, portfolio):
    with transaction(session):
        for src, dst in (("R004", "R003"), ("R003", "R004")):
            session.add(
                Referral(
                    referrer_household_id=session.query(Household.id).filter_by(code=src).scalar(),
                    referred_household_id=session.query(Household.id).filter_by(code=dst).scalar(),
                )
            )
    chains = referral_chains(session)["chains"]
    # C now also refers D, who refers C back: A→B→C→D ends there, marked as a cycle.
    abcd = next(c for c in chains if c["chain"][0] == "R001" and c["length"] == 4)
    assert abcd["chain"] == ["R001", "R002", "R003", "R004"] and abcd["cycle"] is True
    assert not any(set(c["chain"]) == {"R003", "R004"} for c in chains)


def test_cli_json_and_bad_options(run, portfolio):
    shares = json.loads(run("analysis", "referrals", "--format", "json").output)
    total = next(r for r in shares if r["project"] == "全部项目")
    assert (total["sales"], total["referral_sales"], total["amount"]) == (7, 4, 28000.0)
    assert total["reference"].startswith("30%–50%")
    top = run("analysis", "referrers", "--limit", "1", "--format", "json")
    assert top.stderr.startswith("显示 1–1 条，共 5 条；其余请加 --offset 1")
    referrers = json.loads(top.stdout)
    assert referrers == [
        {
            "rank": 1,
            "household": "R001",
            "name": "A家",
            "referred": 2,
            "buyers": 2,
            "referred_amount": 8000.0,
            "first_referral": "2024-02-15",
            "last_referral": "2025-07-01",
            "own_purchases": 2,
            "bought_again": True,
        }
    ]
    chains = json.loads(run("analysis", "chains", "--min-length", "3", "--format", "json").output)
    assert [c["chain"] for c in chains["chains"]] == [
        ["R001", "R002", "R003"],
        ["R008", "R006", "R007"],
    ] or [c["chain"] for c in chains["chains"]] == [
        ["R008", "R006", "R007"],
        ["R001", "R002", "R003"],
    ]
    second = json.loads(run("analysis", "referrers", "--offset", "1", "--format", "json").stdout)
    assert [row["rank"] for row in second] == [2, 3, 4, 5]
    table = run("analysis", "chains")
    assert table.exit_code == 0 and "链长分布" in table.output and "R001→R002→R003" in table.output
    csv_out = run("analysis", "referrals", "--by", "year", "--format", "csv")
    assert csv_out.output.splitlines()[0].startswith("project,period,sales")
    for args, message in (
        (["referrals", "--since", "2025-13-01"], "不是有效日期"),
        (["referrals", "--since", "2026-01-01", "--until", "2025-01-01"], "晚于"),
        (["referrals", "--by", "month"], "month"),
        (["chains", "--min-length", "1"], "1"),
    ):
        result = run("analysis", *args)
        assert result.exit_code != 0, args
        assert message in result.output and "Traceback" not in result.output
        if "有效日期" in message or "晚于" in message:
            assert len(result.output.strip().splitlines()) == 1
