"""The 一路同行 loyalty fund: allocations, contributions and spending per project with the
balance guarded, its ledger and balances through the CLI, and its cost reaching the cost to
serve through household_service_costs (each household's share, contributions subtracted)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from crm.core.db import transaction
from crm.core.errors import CrmError
from crm.core.models import Household, Project
from crm.plugins.service import fund
from crm.plugins.service.costs import household_service_costs
from crm.plugins.service.retention import create_activity

NOW = dt.datetime(2026, 9, 1, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def households(app):
    with app.session() as session, transaction(session):
        lake, river = Project(name="翠湖花园"), Project(name="滨江壹号")
        session.add_all([lake, river])
        session.flush()
        for code, project in (("H1", lake), ("H2", lake), ("H3", lake), ("H4", river)):
            session.add(Household(code=code, name=code + "家", status="existing",
                                  project_id=project.id))  # fmt: skip


def test_ledger_balance_and_cost_to_serve(app, households):
    with app.session() as session, transaction(session):
        fund.allocate(session, "翠湖花园", "9000", year=2026, now=NOW)
        fund.contribute(session, "H1", "600", now=NOW)
        fund.spend(session, "300", kind="gift", household="H2", now=NOW)
        # A project's care that names no household: shared among its three households.
        fund.spend(session, "1500", project="翠湖花园", note="业主慰问", now=NOW)
        activity = create_activity(session, "中秋游园会", NOW, project="翠湖花园", cost="2000")
        entry = fund.spend(session, kind="activity", activity_id=activity.id, now=NOW)
        assert entry.amount == Decimal("2000.00")
        with pytest.raises(CrmError, match="已从基金列支"):
            fund.spend(session, kind="activity", activity_id=activity.id, now=NOW)
        lake = session.scalar(select(Project.id).where(Project.name == "翠湖花园"))
        assert fund.balance(session, lake) == Decimal("5800.00")  # 9000 + 600 - 300 - 1500 - 2000
        with pytest.raises(CrmError, match="余额只有 5,800.00 元"):
            fund.spend(session, "5800.01", project="翠湖花园", now=NOW)
        with pytest.raises(CrmError, match="不同项目"):
            fund.spend(session, "10", project="滨江壹号", household="H1", now=NOW)
        with pytest.raises(CrmError, match="须写明送给哪户"):
            fund.spend(session, "10", kind="gift", project="翠湖花园", now=NOW)
        with pytest.raises(CrmError, match="正数"):
            fund.allocate(session, "翠湖花园", "-5", now=NOW)

        costs = {c["household_id"]: c for c in household_service_costs(session)}
        ids = {h.code: h.id for h in session.query(Household)}
        # The activity is costed on its own (no one signed up, so no household shares it).
        assert costs[ids["H1"]]["loyalty_fund"] == pytest.approx(500 - 600)
        assert costs[ids["H2"]]["loyalty_fund"] == pytest.approx(500 + 300)
        assert costs[ids["H3"]]["loyalty_fund"] == pytest.approx(500)
        assert ids["H4"] not in costs
        # Summed over the households: the company's own money the fund spent outside activities.
        assert sum(c["loyalty_fund"] for c in costs.values()) == pytest.approx(300 + 1500 - 600)

        rows = fund.project_balances(session, year=2027)
        assert rows == [
            {
                "project": "翠湖花园",
                "year": 2027,
                "opening": 5800.0,
                "allocated": 0.0,
                "contributed": 0.0,
                "spent_activity": 0.0,
                "spent_gift": 0.0,
                "spent_care": 0.0,
                "spent": 0.0,
                "balance": 5800.0,
            }
        ]
        people = {r["household"]: r for r in fund.household_balances(session)}
        assert people["H1"]["net"] == -600 and people["H2"]["received"] == 300


def test_cli_allocate_needs_a_manager_and_shows_ledger(app, households, run):
    refused = run("fund", "allocate", "翠湖花园", "5000", as_="小王:agent")
    assert refused.exit_code != 0 and "无权拨付" in refused.output
    done = run("fund", "allocate", "翠湖花园", "5000", "--year", "2026", as_="王经理:manager")
    assert done.exit_code == 0, done.output
    assert "5,000.00" in done.output
    assert run("fund", "contribute", "H1", "200", as_="小王:agent").exit_code == 0
    created = run(
        "activity", "create", "业主运动会", "--at", "2026-10-01 09:00", "--project", "翠湖花园",
        "--cost", "9000", "--fund", as_="小王:agent",
    )  # fmt: skip
    assert created.exit_code != 0 and "余额只有 5,200.00 元" in created.output
    spent = run("fund", "spend", "1200", "--kind", "gift", "--household", "H3", as_="小王:agent")
    assert spent.exit_code == 0, spent.output
    balance = json.loads(run("fund", "balance", "--format", "json").output)
    assert balance[0]["balance"] == 4000.0 and balance[0]["spent_gift"] == 1200.0
    ledger = json.loads(run("fund", "ledger", "--household", "H3", "--format", "json").output)
    assert [(r["kind"], r["amount"], r["direction"]) for r in ledger] == [("gift", 1200.0, "out")]
    table = run("fund", "ledger").output
    assert "年度利润拨付" in table and "客户出资" in table and "礼品" in table
