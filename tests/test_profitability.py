"""Profitability assessment: lifetime value by hand on a tiny case, scoring a small portfolio
on both backends, groups and the whale curve, the service-cost hook's SQL, and the CLI."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import func, insert, select

from crm.core.errors import CrmError
from crm.core.models import Building, Household, Project, Purchase, ServiceRecord
from crm.core.plugins import make_plugin_manager
from crm.plugins import BUILTIN_PLUGINS
from crm.plugins.profitability import bgnbd, clv, groups, mbgnbd
from crm.plugins.profitability.bgnbd import BgNbd
from crm.plugins.profitability.gammagamma import GammaGamma
from crm.plugins.profitability.models import HouseholdValue, ModelFit, ScoringRun
from crm.plugins.profitability.settings import Settings, set_setting

NOW = dt.datetime(2026, 6, 30, 4, 0, tzinfo=dt.UTC)  # noon in Shanghai
AS_OF = dt.date(2026, 6, 30)
MODEL = BgNbd(r=0.5, alpha=20.0, a=0.8, b=3.0)
SPEND = GammaGamma(p=6.0, q=4.0, gamma=2_000_000.0)


def _portfolio(**changes) -> clv.Portfolio:
    """Household 1 bought three times and is an owner and gold member; household 2 is a
    prospect."""
    values = {
        "household_id": np.array([1, 2]),
        "project_id": [1, 1],
        "segment": ["gold", "none"],
        "stage": ["handed_1_4", "prospective"],
        "buyer": np.array([True, False]),
        "owner": np.array([True, False]),
        "area": np.array([100.0, 0.0]),
        "exposure_years": np.array([2.0, 2.0]),
        "x": np.array([2.0, 0.0]),
        "t_x": np.array([10.0, 0.0]),
        "T": np.array([20.0, 0.0]),
        "mean_repeat_spend": np.array([1_000_000.0, 0.0]),
        "referred_sales": np.array([2_000_000.0, 0.0]),
        "repeat_sales_window": np.array([500_000.0, 0.0]),
        "referred_sales_window": np.array([1_000_000.0, 0.0]),
        "service_hours": np.array([10.0, 0.0]),
        "direct_cost": np.array([500.0, 0.0]),
        "repair_fees": np.array([300.0, 0.0]),
        "campaign_cost": np.array([100.0, 0.0]),
        "fund_cost": np.array([400.0, 0.0]),
        "mean_sale": 1_200_000.0,
    }
    values.update(changes)
    return clv.Portfolio(**values)


@pytest.mark.parametrize("purchases", [mbgnbd, bgnbd])
def test_lifetime_value_by_hand(purchases):
    name = purchases.__name__.rsplit(".", 1)[-1]
    settings = Settings.from_values(
        {"horizon_years": "2", "discount_rate": "0.1", "purchase_model": name}
    )
    scores = clv.value(_portfolio(), settings, MODEL, SPEND, "months")
    annuity = 1 / 1.1 + 1 / 1.21  # 1.7355371900826446
    per_year = 365.2425 / (365.2425 / 12)  # 12 months
    first, second = (
        float(purchases.expected_purchases(MODEL, k * per_year, 2.0, 10.0, 20.0)[()])
        for k in (1, 2)
    )
    spend = 6.0 * (2_000_000 + 1_000_000 * 2) / (6.0 * 2 + 4.0 - 1)  # 1,600,000
    parts = {name: values[0] for name, values in scores.parts.items()}
    assert parts["purchase_margin"] == pytest.approx(
        (first / 1.1 + (second - first) / 1.21) * spend * 0.15
    )
    assert parts["property_revenue"] == pytest.approx(2.5 * 100 * 12 * 0.10 * annuity)  # 520.66
    assert parts["service_revenue"] == pytest.approx(300 / 2 * annuity)
    # Each referred sale once, with its margin less the referral's cost: not a yearly rate.
    assert parts["referral_value"] == pytest.approx(2_000_000 * (0.15 - 0.01))
    assert parts["after_sales_cost"] == pytest.approx((10 * 120 + 500) / 2 * annuity)
    # The club (member) and the household's activities and loyalty fund, per year of history.
    assert parts["other_cost"] == pytest.approx((150 + (100 + 400) / 2) * annuity)
    assert scores.clv[0] == pytest.approx(
        parts["purchase_margin"]
        + 520.6611570247934
        + 260.3305785123967
        + 280000.0
        - 850 * annuity
        - 400 * annuity
    )
    assert scores.expected_purchases[0] == pytest.approx(second)
    assert 0 < scores.p_alive[0] < 1
    # The prospect: a first sale with the conversion chance, in the first year, nothing else.
    assert scores.clv[1] == pytest.approx(0.15 * 1_200_000 * 0.15 / 1.1)
    assert np.isnan(scores.p_alive[1])


def test_realized_profit_is_what_the_window_brought_less_what_serving_cost():
    settings = Settings.from_values({})
    scores = clv.value(_portfolio(), settings, MODEL, SPEND)
    # Bought again for 500,000 and referred a 1,000,000 sale within the two-year window;
    # 300 of fees; served for 10 hours, 500 of repairs, 100 of activities, 400 of fund; an
    # owner of 100 m² and a club member.
    brought = 500_000 * 0.15 + 1_000_000 * (0.15 - 0.01) + 300
    cost = 10 * 120 + 500 + 100 + 400
    assert scores.realized[0] == pytest.approx((brought - cost) / 2 + 2.5 * 100 * 12 * 0.1 - 150)
    assert scores.realized[1] == 0  # the prospect: nothing brought, nothing spent
    # Without the sales it brought, the same household costs more than its property margin:
    # unprofitable however much it may buy in future (its lifetime value stays positive).
    idle = clv.value(
        _portfolio(repeat_sales_window=np.zeros(2), referred_sales_window=np.zeros(2)),
        settings,
        MODEL,
        SPEND,
    )
    assert idle.realized[0] == pytest.approx((300 - cost) / 2 + 300 - 150) == -800
    assert idle.clv[0] > 0
    # A dearer staff hour makes it lose more; a higher property margin less.
    dear = clv.value(_portfolio(), Settings.from_values({"hourly_cost": "240"}), MODEL, SPEND)
    assert dear.realized[0] == pytest.approx(scores.realized[0] - 10 * 120 / 2)


def test_discounting_and_margins_follow_the_settings():
    base = clv.value(_portfolio(), Settings.from_values({}), MODEL, SPEND).clv[0]
    no_discount = Settings.from_values({"discount_rate": "0"})
    higher = clv.value(_portfolio(), no_discount, MODEL, SPEND).clv[0]
    assert higher > base
    costly = Settings.from_values({"hourly_cost": "1000"})
    # 880 yuan more per hour for 10 hours over 2 years of history, for 5 discounted years.
    expected = base - 880 * 10 / 2 * costly.annuity
    assert clv.value(_portfolio(), costly, MODEL, SPEND).clv[0] == pytest.approx(expected)
    # No Gamma-Gamma model: every purchase is worth the mean sale.
    flat = clv.value(_portfolio(), Settings.from_values({}), MODEL, None)
    ratio = (
        flat.parts["purchase_margin"][0]
        / clv.value(_portfolio(), Settings.from_values({}), MODEL, SPEND).parts["purchase_margin"][
            0
        ]
    )
    assert ratio == pytest.approx(1_200_000 / 1_600_000)


def test_whale_curve_and_unprofitable_share():
    profit = np.array([100.0, 50.0, -10.0, -40.0])
    cost = np.array([0.0, 10.0, 30.0, 60.0])
    curve = groups.whale_curve(profit, points=4)
    assert [row["cumulative_profit"] for row in curve] == [100, 150, 140, 100]
    assert [row["profit_share"] for row in curve] == [1.0, 1.5, 1.4, 1.0]
    figures = groups.concentration(profit, cost)
    assert figures["profit_basis"] == "clv"
    assert figures["unprofitable_share"] == 0.5
    assert figures["unprofitable_cost_share"] == 0.9
    # The two heaviest users take 90 % of the cost (the first reaching 70 %) and lose money.
    assert figures["heavy_users"] == 2
    assert figures["heavy_profit_share"] == -0.5
    assert figures["peak_profit_share"] == 1.5
    lines = groups.summary_lines(figures)
    assert lines[0]["value"] == "50.0%" and lines[0]["reference"] == "50%-60%"
    # With realized profits, the reference stands beside the realized share and the heavy
    # users' share of profit is of realized profit.
    realized = np.array([30.0, 20.0, -5.0, 5.0])
    figures = groups.concentration(profit, cost, realized)
    assert figures["profit_basis"] == "realized"
    assert figures["realized_unprofitable_share"] == 0.25
    assert figures["realized_unprofitable_cost_share"] == 0.3
    assert figures["heavy_profit_share"] == 0.0  # households 4 and 3: 5 - 5 of 50
    assert figures["peak_profit_share"] == 1.1  # 30 + 20 + 5 of 50
    lines = groups.summary_lines(figures)
    assert lines[0]["value"] == "25.0%" and lines[0]["reference"] == "50%-60%"
    assert lines[2]["value"] == "50.0%" and lines[2]["reference"] == "—"


# A small portfolio in the database ---------------------------------------------------------


def build_portfolio(session, households: int = 120, seed: int = 7) -> list[int]:
    """Households whose purchase histories come from a BG/NBD process (months), a few
    prospects, referrals and handovers of every age; returns the household ids."""
    rng = np.random.default_rng(seed)
    session.add(Project(id=1, name="翠湖花园"))
    session.add(Project(id=2, name="望江府"))
    session.flush()
    session.add(Building(id=1, project_id=1, name="1栋"))
    session.flush()
    T = rng.uniform(3, 72, households)
    x, t_x, _alive = bgnbd.simulate(MODEL, T, rng)
    homes, purchases, contract = [], [], 0
    for i in range(households):
        hid = i + 1
        prospect = i % 10 == 9
        homes.append(
            {
                "id": hid,
                "code": f"H{hid:04d}",
                "name": f"客户{hid}",
                "status": "prospective" if prospect else "existing",
                "project_id": 1 + i % 2,
                "member_tier": ("none", "gold", "standard")[i % 3],
            }
        )
        if prospect:
            continue
        start = AS_OF - dt.timedelta(days=int(T[i] * 30.436875))
        days = {0}
        if x[i] > 0:
            days.add(int(t_x[i] * 30.436875))
            while len(days) < x[i] + 1:
                days.add(int(rng.uniform(1, max(t_x[i], 1.1)) * 30.436875))
        for day in sorted(days):
            contract += 1
            bought = start + dt.timedelta(days=day)
            purchases.append(
                {
                    "contract_no": f"C{contract:05d}",
                    "household_id": hid,
                    "purchase_date": bought,
                    "floor_area": Decimal("90.00"),
                    "amount": Decimal(f"{rng.gamma(6.0, 200_000.0):.2f}"),
                    "handover_date": bought + dt.timedelta(days=60)
                    if bought + dt.timedelta(days=60) <= AS_OF
                    else None,
                    "referrer_household_id": 1 if hid in (5, 6) else None,
                }
            )
    session.execute(insert(Household), homes)
    session.execute(insert(Purchase), purchases)
    session.flush()
    return [h["id"] for h in homes]


def store_fit(session) -> None:
    for model, parameters in (
        ("mbgnbd", {"r": MODEL.r, "alpha": MODEL.alpha, "a": MODEL.a, "b": MODEL.b}),
        ("gammagamma", {"p": SPEND.p, "q": SPEND.q, "gamma": SPEND.gamma}),
    ):
        session.add(
            ModelFit(
                model=model,
                parameters=parameters,
                calibration_end=AS_OF,
                unit="months",
                log_likelihood=-1.0,
                customers=1,
                fitted_at=NOW,
                fitted_by="test",
            )
        )
    session.flush()


def test_fit_score_and_store(session):
    ids = build_portfolio(session)
    bg, gg = clv.fit_models(session, AS_OF, "months", now=NOW)
    assert bg.model == "mbgnbd" and bg.customers == len(ids) - len(ids) // 10
    assert set(bg.parameters) == {"r", "alpha", "a", "b"}
    assert np.isfinite(bg.log_likelihood)
    assert gg is not None and set(gg.parameters) == {"p", "q", "gamma"}
    run, _notes = clv.score(session, now=NOW)
    assert run.households == len(ids) and run.as_of == AS_OF
    assert run.service_costs_known and run.bgnbd_fit_id == bg.id
    stored = session.scalars(select(HouseholdValue)).all()
    assert len(stored) == len(ids)
    assert sum(v.clv for v in stored) == pytest.approx(run.total_clv)
    stages = {v.household_id: v.stage for v in stored}
    assert stages[10] == "prospective"
    assert {"handed_lt1", "handed_1_4", "handed_gt4"} <= set(stages.values())
    # Household 1 referred households 5 and 6: it alone has referral value.
    referral = {v.household_id: v.referral_value for v in stored}
    assert referral[1] > 0 and sum(referral.values()) == pytest.approx(referral[1])
    # A second run replaces the values and keeps both runs.
    clv.score(session, now=NOW)
    assert session.scalar(select(func.count()).select_from(HouseholdValue)) == len(ids)
    assert session.scalar(select(func.count()).select_from(ScoringRun)) == 2


def test_groups_by_project_segment_and_stage(session):
    ids = build_portfolio(session)
    store_fit(session)
    clv.score(session, now=NOW)
    values = session.scalars(select(HouseholdValue)).all()
    by_project = groups.group_report(session, "project")
    assert {row["label"] for row in by_project} == {"翠湖花园", "望江府"}
    assert sum(row["households"] for row in by_project) == len(ids)
    first = next(row for row in by_project if row["key"] == "翠湖花园")
    mine = [v.clv for v in values if v.project_id == 1]
    assert first["clv_total"] == pytest.approx(sum(mine), abs=0.05)
    assert first["unprofitable_share"] == pytest.approx(
        sum(c < 0 for c in mine) / len(mine), abs=1e-4
    )
    by_segment = groups.group_report(session, "segment")
    assert [row["label"] for row in by_segment] == ["非会员", "普通会员", "金卡"]
    stages = [row["key"] for row in groups.group_report(session, "stage")]
    assert stages[0] == "prospective"
    curve, figures = groups.portfolio_figures(session)
    assert len(curve) == 10 and curve[-1]["households"] == len(ids)
    # The whale curve and the reference share are of realized profit; the lifetime value's
    # unprofitable share stands beside them.
    assert figures["profit_basis"] == "realized"
    realized = [v.realized_profit for v in values]
    assert curve[-1]["cumulative_profit"] == pytest.approx(sum(realized), abs=0.05)
    assert figures["realized_unprofitable_share"] == pytest.approx(
        sum(r < 0 for r in realized) / len(values), abs=1e-4
    )
    assert figures["unprofitable_share"] == pytest.approx(
        sum(v.clv < 0 for v in values) / len(values), abs=1e-4
    )
    assert first["realized_unprofitable_share"] == pytest.approx(
        sum(v.realized_profit < 0 for v in values if v.project_id == 1) / len(mine), abs=1e-4
    )


def test_settings_changes_change_the_values(session):
    build_portfolio(session)
    store_fit(session)
    run, _ = clv.score(session, now=NOW)
    set_setting(session, "profitability.property_fee_per_m2_month", "5")
    again, _ = clv.score(session, now=NOW)
    assert again.settings["property_fee_per_m2_month"] == 5
    # 2.5 yuan more per m² and month on 90 m² per flat, at 10 % margin, over 5 years.
    flats = session.scalar(select(func.sum(Purchase.floor_area)))
    extra = 2.5 * float(flats) * 12 * 0.10 * Settings.from_values({}).annuity
    assert again.total_clv - run.total_clv == pytest.approx(extra, rel=1e-6)


def test_the_purchase_model_is_a_setting_recorded_with_the_fit_and_the_run(session):
    build_portfolio(session)
    store_fit(session)
    run, _ = clv.score(session, now=NOW)
    assert run.settings["purchase_model"] == "mbgnbd"
    buyers = select(HouseholdValue).where(HouseholdValue.stage != "prospective")
    values = session.scalars(buyers).all()
    # MBG/NBD: a one-time buyer may be gone, the more likely the longer ago they bought.
    x, _t_x, T = _histories(session, [v.household_id for v in values])
    silent = [(ti, v) for v, xi, ti in zip(values, x, T, strict=True) if xi == 0]
    assert silent and all(v.p_alive < 1 for _, v in silent)
    by_age = [v.p_alive for _, v in sorted(silent, key=lambda pair: pair[0])]
    assert np.all(np.diff(by_age) <= 0)
    silent = [v for _, v in silent]
    set_setting(session, "profitability.purchase_model", "bgnbd")
    again, notes = clv.score(session, now=NOW)
    assert again.settings["purchase_model"] == "bgnbd"
    fit = session.get(ModelFit, again.bgnbd_fit_id)
    assert fit.model == "bgnbd" and any("BG/NBD" in note for note in notes)
    assert fit.status and fit.parameters["a"] > 0
    # BG/NBD keeps every one-time buyer alive.
    ids = {v.household_id for v in silent}
    stored = session.scalars(select(HouseholdValue).where(HouseholdValue.household_id.in_(ids)))
    assert all(v.p_alive == 1 for v in stored)
    with pytest.raises(CrmError, match="不认识的取值"):
        set_setting(session, "profitability.purchase_model", "pareto")


def _histories(session, ids):
    from crm.plugins.profitability.history import purchase_summary

    summary = purchase_summary(session, AS_OF, "months", household_ids=ids)
    order = {hid: i for i, hid in enumerate(summary.household_id.tolist())}
    rows = [order[hid] for hid in ids]
    return summary.x[rows], summary.t_x[rows], summary.T[rows]


def test_without_the_service_plugin_ticket_costs_are_zero_and_said(session):
    build_portfolio(session, households=30)
    store_fit(session)
    session.info["pm"] = make_plugin_manager(
        [name for name in BUILTIN_PLUGINS if not name.endswith("service")]
    )
    run, notes = clv.score(session, now=NOW)
    assert not run.service_costs_known
    assert any("服务处理插件未启用" in note for note in notes)


# The service plugin's cost hook ----------------------------------------------------------


def test_household_service_costs_sql(session):
    from crm.plugins.service.models import (
        ActivitySignup,
        RewardActivity,
        Ticket,
        WorkOrder,
    )

    build_portfolio(session, households=4)
    opened = NOW - dt.timedelta(days=10)

    def ticket(number, household, severity, minutes=None, **more):
        closed = opened + dt.timedelta(minutes=minutes) if minutes is not None else None
        row = Ticket(
            number=number,
            ticket_type=more.pop("ticket_type", "complaint"),
            channel="phone",
            household_id=household,
            summary="测试",
            status="closed" if closed else "accepted",
            severity=severity,
            opened_at=opened,
            closed_at=closed,
            **more,
        )
        session.add(row)
        session.flush()
        return row

    first = ticket("TS1", 1, "general", 90)
    ticket("TS2", 1, "major", 30)
    ticket("TS3", 1, "major")
    repair = ticket(
        "WX1", 2, "important", 60, ticket_type="repair", paid=True, fee_amount=Decimal(150)
    )
    ticket("WX2", 2, "general", ticket_type="repair", paid=False, fee_amount=Decimal(80))
    for number, on, cost, kind, status in (
        ("WX1-01", repair, "400", None, "done"),  # a repair job: its kind says so
        ("TS1-01", first, "600", "compensation", "done"),
        ("TS1-02", first, "300", "gift", "done"),
        ("TS1-03", first, "999", "gift", "cancelled"),
        # Coordination's compensation task: no ticket, the household's all the same.
        ("RW1", None, "400", "compensation", "done"),
    ):
        session.add(
            WorkOrder(
                number=number,
                ticket_id=on.id if on else None,
                household_id=on.household_id if on else first.household_id,
                kind="repair" if on is repair else "remedial" if on else "compensation",
                description="测试",
                status=status,
                cost=Decimal(cost),
                cost_kind=kind,
                completed_at=opened + dt.timedelta(days=1),
            )
        )
    activity = RewardActivity(name="业主答谢会", held_at=opened, cost=Decimal(900))
    session.add(activity)
    session.flush()
    for household, attended in ((1, True), (2, None), (3, True), (4, False)):
        session.add(
            ActivitySignup(activity_id=activity.id, household_id=household, attended=attended)
        )
    session.flush()
    pm = session.info["pm"]
    rows = {
        row["household_id"]: row
        for row in pm.hook.household_service_costs(session=session, since=None, until=NOW)
    }
    assert set(rows) == {1, 2, 3}  # household 4 stayed away: no cost at all
    one, two, three = rows[1], rows[2], rows[3]
    assert (one["tickets_general"], one["tickets_major"], one["tickets_important"]) == (1, 2, 0)
    assert one["handling_minutes"] == pytest.approx(120, abs=0.01)
    assert (one["compensation"], one["gifts"], one["repair_cost"]) == (1000, 300, 0)
    assert one["campaign_cost"] == pytest.approx(300)
    assert (two["repair_fees"], two["repair_cost"], two["tickets_important"]) == (150, 400, 1)
    assert two["handling_minutes"] == pytest.approx(60, abs=0.01)
    assert three["campaign_cost"] == pytest.approx(300) and three["tickets_general"] == 0
    # The window: nothing opened before `since`.
    later = pm.hook.household_service_costs(session=session, since=NOW, until=None)
    assert later == []
    # And the tickets reach the lifetime value: household 1's after-sales cost.
    store_fit(session)
    clv.score(session, now=NOW)
    cost = session.scalar(
        select(HouseholdValue.after_sales_cost).where(HouseholdValue.household_id == 1)
    )
    hours = 1 * 2 + 2 * 40  # one general and two major tickets
    # Costs are a yearly rate over the cost window (two years, not before the register's
    # first entry), over the part of it the household was a customer (at least two years,
    # unless the window is shorter).
    since_first = (
        AS_OF
        - session.scalar(select(func.min(Purchase.purchase_date)).where(Purchase.household_id == 1))
    ).days / 365.2425
    # (These tickets were written without their register entries: the register is empty.)
    assert session.scalar(select(func.min(ServiceRecord.opened_at))) is None
    window_start = AS_OF - dt.timedelta(days=round(2 * 365.2425))
    window = (AS_OF - window_start).days / 365.2425
    exposure = max(min(since_first, window), min(2, window))
    assert cost == pytest.approx(
        (hours * 120 + 1000 + 300) / exposure * Settings.from_values({}).annuity
    )


# CLI -----------------------------------------------------------------------------------------


def test_cli_fit_clv_groups_json(app, run, tmp_path):
    with app.session() as session:
        build_portfolio(session)
        session.commit()
    result = run("profitability", "fit", "--calibration-end", "2026-06-30", "--format", "json")
    assert result.exit_code == 0, result.output
    fits = json.loads(result.stdout)
    assert [f["model"] for f in fits] == ["MBG/NBD", "Gamma-Gamma"]
    assert fits[0]["unit"] == "months" and fits[0]["customers"] == 108
    result = run("profitability", "clv", "--limit", "3", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["clv"] >= rows[1]["clv"] >= rows[2]["clv"]
    # Every household was scored and stored: the limit only cut the list shown.
    scored = int(re.search(r"已评估 (\d+) 户", result.stderr)[1])
    assert f"显示 1–3 条，共 {scored} 条" in result.stderr
    lowest = run("profitability", "clv", "--stored", "--lowest", "--limit", "2", "--format", "json")
    bottom = json.loads(lowest.stdout)
    assert [r["rank"] for r in bottom] == [scored, scored - 1]
    assert bottom[0]["clv"] <= bottom[1]["clv"] <= rows[-1]["clv"]
    # The same ranks from the top, paged to the end.
    tail = run("profitability", "clv", "--stored", "--offset", str(scored - 2), "--format", "json")
    assert json.loads(tail.stdout) == bottom[::-1]
    one = run("profitability", "clv", "--stored", "--household", "H0001", "--format", "json")
    assert json.loads(one.stdout)["household"] == "H0001"
    missing = run("profitability", "clv", "--stored", "--household", "NOPE")
    assert missing.exit_code != 0 and "Traceback" not in missing.output
    result = run(
        "profitability", "groups", "--by", "stage", "--chart", str(tmp_path), "--format", "json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"groups", "whale_curve", "summary"} <= set(report)
    assert (tmp_path / "whale.png").stat().st_size > 1000
    table = run("profitability", "groups")
    assert "50%-60%" in table.stdout and "鲸鱼曲线" in table.stdout


def test_cli_settings_need_a_manager(run):
    denied = run("profitability", "settings", "set", "discount_rate", "0.05", as_="x:agent")
    assert denied.exit_code != 0 and "无权" in denied.output
    bad = run("profitability", "settings", "set", "discount_rate", "abc")
    assert bad.exit_code != 0 and "数字" in bad.output
    unknown = run("profitability", "settings", "set", "no_such_key", "1")
    assert unknown.exit_code != 0 and "settings list" in unknown.output
    done = run("profitability", "settings", "set", "discount_rate", "0.05", as_="王:manager")
    assert done.exit_code == 0, done.output
    listed = json.loads(run("profitability", "settings", "list", "--format", "json").stdout)
    rate = next(row for row in listed if row["key"] == "profitability.discount_rate")
    assert rate["value"] == "0.05" and rate["changed"] is True


def test_cli_without_a_run_says_what_to_do(run):
    result = run("profitability", "clv", "--stored")
    assert result.exit_code != 0 and "crm profitability clv" in result.output
    # A code that names nobody is refused before every household is scored and stored.
    unknown = run("profitability", "clv", "--household", "NOPE")
    assert unknown.exit_code != 0 and "找不到客户编号为“NOPE”" in unknown.output
    assert "已评估" not in unknown.output
    still = run("profitability", "clv", "--stored")
    assert still.exit_code != 0 and "还没有终身价值评估结果" in still.output


def test_a_referred_sale_is_credited_once_with_its_margin(session):
    from crm.core.models import Referral

    ids = []
    for code in ("A", "B", "C"):
        household = Household(code=code, name=code, status="existing")
        session.add(household)
        session.flush()
        ids.append(household.id)
    a, b, c = ids

    def sale(no, household, amount, referrer=None):
        row = Purchase(
            contract_no=no, household_id=household, purchase_date=dt.date(2025, 1, 1),
            amount=Decimal(amount), referrer_household_id=referrer,
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id

    sale("A-1", a, "3000000")
    # B's sale names A and the referral register points to it too: one referred sale.
    b_sale = sale("B-1", b, "2000000", referrer=a)
    session.add(Referral(referrer_household_id=a, referred_household_id=b, purchase_id=b_sale))
    # C's sale is only in the register.
    c_sale = sale("C-1", c, "1000000")
    session.add(Referral(referrer_household_id=a, referred_household_id=c, purchase_id=c_sale))
    session.flush()
    settings = Settings.from_values({})
    portfolio = clv.gather(session, AS_OF, settings, "months")
    assert portfolio.referred_sales.tolist() == [3_000_000.0, 0.0, 0.0]
    scores = clv.value(portfolio, settings, None, None)
    # Once, with the margin less the referral's cost; not a yearly rate over the horizon.
    assert scores.parts["referral_value"][0] == pytest.approx(3_000_000 * (0.15 - 0.01))
    half = Settings.from_values({"referral_credit": "0.5"})
    assert clv.value(portfolio, half, None, None).parts["referral_value"][0] == pytest.approx(
        3_000_000 * 0.14 * 0.5
    )


def test_groups_scores_first_and_explains_the_unprofitable_share(app, run):
    with app.session() as session:
        build_portfolio(session)
        session.commit()
    result = run("profitability", "groups", "--explain", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = {row["label"]: row for row in report["sensitivity"]}
    base = rows["当前设置"]
    assert base["unprofitable_share"] == report["summary"]["unprofitable_share"]
    # Dearer service and a thinner margin can only make more households unprofitable.
    assert rows["hourly_cost = 480"]["unprofitable"] >= base["unprofitable"]
    assert rows["sales_margin = 0.05"]["unprofitable"] >= base["unprofitable"]
    assert rows["sales_margin = 0.05"]["clv_median"] < base["clv_median"]
    # Three times the hours per ticket: the row values a portfolio read with those hours (the
    # median household may have no ticket, so it is the total that must move).
    assert rows["工单工时 ×3"]["clv_median"] <= base["clv_median"]
    with app.session() as session:
        calls = []
        real_gather = clv.gather
        try:
            clv.gather = lambda *args: calls.append(args[2]) or real_gather(*args)
            groups.sensitivity(session)
        finally:
            clv.gather = real_gather
    # Once as set, once with three times the hours, once for each other cost window.
    assert [s.handling_hours for s in calls[1:2]] == [
        {k: 3 * h for k, h in calls[0].handling_hours.items()}
    ]
    assert [s.cost_window_years for s in calls] == [2, 2, 1, 4]
    # The realized share moves with the cost of serving and the property margin.
    assert base["realized_unprofitable_share"] == report["summary"]["realized_unprofitable_share"]
    assert (
        rows["hourly_cost = 480"]["realized_unprofitable_share"]
        >= (base["realized_unprofitable_share"])
    )
    assert (
        rows["property_margin = 0.2"]["realized_unprofitable_share"]
        <= (base["realized_unprofitable_share"])
    )
    # BG/NBD, fitted on the spot, keeps one-time buyers alive: never fewer profitable ones.
    assert rows["purchase_model = bgnbd"]["unprofitable"] <= base["unprofitable"]
    assert any("户均" in line for line in report["explanation"])
    table = run("profitability", "groups", "--explain")
    assert "敏感性" in table.stdout and "不盈利占比" in table.stdout
