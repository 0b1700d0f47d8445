"""Lifetime value per household (客户终身价值), computed with numpy over the whole portfolio.

    CLV = purchase margin + property revenue + paid-service revenue + referral value
          − after-sales cost − other cost to serve

over `horizon_years`, each year's cash flow discounted at `discount_rate` (end of year):
- purchase margin: expected purchases in each year of the horizon (MBG/NBD by default, or
  BG/NBD: setting `purchase_model`) × Gamma-Gamma
  expected spend × sales margin (a prospective household: conversion × mean sale × margin,
  in the first year);
- property revenue: fee per m² and month × floor area owned × 12 × property margin, each year;
- paid-service revenue: the household's own yearly rate so far (repair fees charged), carried
  forward;
- referral value: the margin its referred sales brought (amount × sales margin × the share
  credited to the referrer), each referred sale credited once, to one referrer, and not carried
  forward (the referral is not assumed to repeat every year);
- after-sales cost: staff hours of its tickets (by severity) and of its card service records
  × hourly cost, plus repair cost, compensation and gifts, as a yearly rate carried forward;
- other cost: the 一路同行 loyalty fund's spending on it less its own contributions, the club
  cost (members) and its share of reward activities, as a yearly rate carried forward.
Yearly rates (costs, paid-service fees) read the last `cost_window_years` of history and
divide by the years of it the household was a customer (at least `min_exposure_years`): the
ticket register may be younger than the oldest purchases, and a cost counted over two years
must not be spread over ten.

Beside this forecast, each household's realized relationship profit (已实现维系利润) per year
over the same window: the margin of what it bought again and of the sales it referred, its
property margin and paid-service fees, less what serving it cost. This is the figure the
reference "50–60 % of customers are unprofitable" speaks of (what a customer brought against
what keeping it cost), while the lifetime value adds the expected future purchases, which for
a home worth millions outweigh years of after-sales cost.
The rates and costs are in `crm.plugins.profitability.settings`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Date, and_, case, delete, func, insert, literal, select, true
from sqlalchemy.orm import Session

from crm.core import audit
from crm.core.clock import local_today
from crm.core.errors import CrmError, NotFound
from crm.core.models import (
    Household,
    Project,
    Purchase,
    Referral,
    ServiceRecord,
    Unit,
    utcnow,
)
from crm.core.paging import Page, fetch
from crm.core.vocab import MEMBER_TIERS
from crm.plugins.profitability import bgnbd, gammagamma, history, mbgnbd
from crm.plugins.profitability.bgnbd import BgNbd
from crm.plugins.profitability.gammagamma import GammaGamma
from crm.plugins.profitability.models import HouseholdValue, ModelFit, ScoringRun
from crm.plugins.profitability.settings import Settings, load, snapshot

YEAR_DAYS = 365.2425
STAGES = {
    "prospective": "准客户",
    "signed": "已签约未交房",
    "handed_lt1": "交房不满1年",
    "handed_1_4": "交房1-4年",
    "handed_gt4": "交房4年以上",
}
PARTS = (
    "purchase_margin",
    "property_revenue",
    "service_revenue",
    "referral_value",
    "after_sales_cost",
    "other_cost",
)
# PostgreSQL advisory lock held by a scoring until its transaction ends: two scorings at once
# (two coordination cycles assessing their first feedback) take turns instead of both
# inserting the values of every household.
SCORING_LOCK = 0x5E7C_0101
# The purchase-count models by setting `purchase_model`: the same parameters (r, alpha, a, b),
# the same functions (fit, p_alive, expected_purchases). A fit is stored under its code.
PURCHASE_MODELS = {"bgnbd": bgnbd, "mbgnbd": mbgnbd}
MODEL_NAMES = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "gammagamma": "Gamma-Gamma"}
NO_SERVICE_COSTS = "没有插件提供工单成本（服务处理插件未启用）：工单、维修、补偿与礼品成本按零计。"


# Fits ------------------------------------------------------------------------------------


def fit_models(
    session: Session,
    calibration_end: dt.date | None = None,
    unit: str | None = None,
    since: dt.date | None = None,
    now: dt.datetime | None = None,
    purchase_model: str | None = None,
) -> tuple[ModelFit, ModelFit | None]:
    """Fit the purchase-count model (`purchase_model`, by default the setting) and
    Gamma-Gamma on the purchases up to `calibration_end` and store both (Gamma-Gamma is None
    when no household bought twice at a price)."""
    audit.current_user(session).require("profitability.run", "拟合购买模型")
    now = now or utcnow()
    calibration_end = calibration_end or local_today(now)
    settings = load(session)
    unit = unit or settings.unit
    purchase_model = purchase_model or settings.purchase_model
    summary = history.purchase_summary(session, calibration_end, unit, since)
    if summary.x.size == 0:
        raise CrmError("截止日期前没有任何成交记录，无法拟合购买模型：请先导入成交数据。")
    try:
        bg = PURCHASE_MODELS[purchase_model].fit(summary.x, summary.t_x, summary.T)
    except (ValueError, RuntimeError) as exc:
        name = MODEL_NAMES[purchase_model]
        raise CrmError(f"{name} 模型拟合失败（{exc}）：成交记录可能太少。") from None
    by = audit.current_user(session).label
    common = {"calibration_end": calibration_end, "unit": unit, "since": since, "fitted_at": now}
    bg_row = ModelFit(
        model=purchase_model,
        parameters={"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b},
        log_likelihood=bg.log_likelihood,
        customers=bg.n,
        fitted_by=by,
        status=bg.status,
        **common,
    )
    session.add(bg_row)
    gg_row = None
    try:
        gg = gammagamma.fit(summary.x, summary.mean_repeat_spend)
    except (ValueError, RuntimeError):
        gg = None
    if gg is not None:
        gg_row = ModelFit(
            model="gammagamma",
            parameters={"p": gg.p, "q": gg.q, "gamma": gg.gamma},
            log_likelihood=gg.log_likelihood,
            customers=gg.n,
            fitted_by=by,
            status=gg.status,
            **common,
        )
        session.add(gg_row)
    session.flush()
    return bg_row, gg_row


def latest_fit(session: Session, model: str) -> ModelFit | None:
    return session.scalar(
        select(ModelFit).where(ModelFit.model == model).order_by(ModelFit.id.desc()).limit(1)
    )


def fit_row(fit: ModelFit) -> dict:
    return {
        "id": fit.id,
        "model": MODEL_NAMES[fit.model],
        "parameters": {k: round(v, 6) for k, v in fit.parameters.items()},
        "log_likelihood": round(fit.log_likelihood, 2),
        "customers": fit.customers,
        "calibration_end": fit.calibration_end,
        "unit": fit.unit,
        "since": fit.since,
        "fitted_at": fit.fitted_at,
        "fitted_by": fit.fitted_by,
        "status": fit.status,
    }


# Inputs ----------------------------------------------------------------------------------


@dataclass
class Portfolio:
    """Per-household inputs as aligned arrays (ordered by household id)."""

    household_id: np.ndarray
    project_id: list[int | None]
    segment: list[str]
    stage: list[str]
    buyer: np.ndarray  # has a purchase up to the run date
    owner: np.ndarray  # has a flat handed over
    area: np.ndarray  # m² owned
    exposure_years: np.ndarray  # years of the cost window it was a customer (≥ min exposure)
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    mean_repeat_spend: np.ndarray
    referred_sales: np.ndarray  # yuan of sales it referred (each sale once)
    repeat_sales_window: np.ndarray  # yuan of its own purchases in the window, the first excepted
    referred_sales_window: np.ndarray  # yuan of the sales it referred in the window
    service_hours: np.ndarray  # staff hours of tickets and card records
    direct_cost: np.ndarray  # repair cost + compensation + gifts
    repair_fees: np.ndarray
    campaign_cost: np.ndarray
    mean_sale: float  # mean purchase amount of the portfolio
    fund_cost: np.ndarray | None = None  # loyalty-fund spending on it less its contributions
    service_costs_known: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def member(self) -> np.ndarray:
        """Which households are club members (pay the club's yearly cost)."""
        return np.array([s != "none" for s in self.segment], dtype=bool)

    @property
    def fund(self) -> np.ndarray:
        """The loyalty fund's spending on each household (zero where it was not read)."""
        if self.fund_cost is None:
            return np.zeros(self.household_id.size)
        return self.fund_cost


def _stage(first_buy: dt.date | None, first_handover: dt.date | None, as_of: dt.date) -> str:
    if first_buy is None:
        return "prospective"
    if first_handover is None:
        return "signed"
    years = (as_of - first_handover).days / YEAR_DAYS
    return "handed_lt1" if years < 1 else "handed_1_4" if years < 4 else "handed_gt4"


def _in(column, ids):
    return true() if ids is None else column.in_(ids)


def gather(
    session: Session,
    as_of: dt.date,
    settings: Settings,
    unit: str,
    household_ids: list[int] | None = None,
) -> Portfolio:
    """Read every input with a handful of grouped queries (or those of `household_ids`)."""
    p = Purchase.__table__.c
    day = literal(as_of, Date)
    rows = session.execute(
        select(
            Household.id,
            Household.project_id,
            Household.member_tier,
            func.min(p.purchase_date),
            func.min(case((p.handover_date <= day, p.handover_date))),
            func.coalesce(func.sum(func.coalesce(p.floor_area, Unit.floor_area)), 0),
        )
        .outerjoin(Purchase, and_(p.household_id == Household.id, p.purchase_date <= day))
        .outerjoin(Unit, Unit.id == p.unit_id)
        .where(_in(Household.id, household_ids))
        .group_by(Household.id, Household.project_id, Household.member_tier)
        .order_by(Household.id)
    ).all()
    n = len(rows)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    first_buy = [r[3] for r in rows]
    buyer = np.array([d is not None for d in first_buy], dtype=bool)
    since_first = np.array(
        [(as_of - d).days / YEAR_DAYS if d is not None else 0.0 for d in first_buy]
    )
    # The cost window: the last `cost_window_years`, but not before the service register's
    # first entry (a register kept for one year holds one year of costs).
    window_start = as_of - dt.timedelta(days=round(settings.cost_window_years * YEAR_DAYS))
    register_start = session.scalar(select(func.min(ServiceRecord.opened_at)))
    if register_start is not None:
        window_start = min(max(window_start, register_start.date()), as_of)
    window = max((as_of - window_start).days / YEAR_DAYS, 1 / YEAR_DAYS)
    exposure = np.maximum(np.minimum(since_first, window), min(settings.min_exposure_years, window))
    portfolio = Portfolio(
        household_id=ids,
        project_id=[r[1] for r in rows],
        segment=[r[2] or "none" for r in rows],
        stage=[_stage(r[3], r[4], as_of) for r in rows],
        buyer=buyer,
        owner=np.array([r[4] is not None for r in rows], dtype=bool),
        area=np.array([float(r[5]) for r in rows]),
        exposure_years=exposure,
        x=np.zeros(n),
        t_x=np.zeros(n),
        T=np.zeros(n),
        mean_repeat_spend=np.zeros(n),
        referred_sales=np.zeros(n),
        repeat_sales_window=np.zeros(n),
        referred_sales_window=np.zeros(n),
        service_hours=np.zeros(n),
        direct_cost=np.zeros(n),
        repair_fees=np.zeros(n),
        campaign_cost=np.zeros(n),
        fund_cost=np.zeros(n),
        mean_sale=float(
            session.scalar(select(func.avg(p.amount)).where(p.purchase_date <= day)) or 0.0
        ),
    )
    if n == 0:
        return portfolio

    def place(keys, values, target: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        if keys.size == 0:
            return
        index = np.searchsorted(ids, keys)
        found = (index < n) & (ids[np.minimum(index, n - 1)] == keys)
        np.add.at(target, index[found], np.asarray(values, dtype=float)[found])

    summary = history.purchase_summary(session, as_of, unit)
    for name in ("x", "t_x", "T", "mean_repeat_spend"):
        place(summary.household_id, getattr(summary, name), getattr(portfolio, name))

    # A sale is a referral when it names its referrer or a referral register entry points to
    # it; either way it is credited once, to one referrer (the purchase's own first).
    r = Referral.__table__.c
    referrer = func.coalesce(p.referrer_household_id, func.min(r.referrer_household_id))
    referred_sales = (
        select(
            referrer.label("referrer"),
            func.max(p.amount).label("amount"),
            func.max(p.purchase_date).label("day"),
        )
        .select_from(Purchase.__table__.outerjoin(Referral.__table__, r.purchase_id == p.id))
        .where(p.purchase_date <= day)
        .group_by(p.id, p.referrer_household_id)
        .having(referrer.is_not(None))
        .subquery()
    )
    in_window = referred_sales.c.day >= literal(window_start, Date)
    referred = session.execute(
        select(
            referred_sales.c.referrer,
            func.sum(referred_sales.c.amount),
            func.sum(case((in_window, referred_sales.c.amount), else_=0)),
        )
        .where(_in(referred_sales.c.referrer, household_ids))
        .group_by(referred_sales.c.referrer)
    ).all()
    place([r[0] for r in referred], [float(r[1]) for r in referred], portfolio.referred_sales)
    place(
        [r[0] for r in referred], [float(r[2]) for r in referred], portfolio.referred_sales_window
    )

    # What it bought again in the window: purchases after the day of its first purchase.
    first = (
        select(p.household_id, func.min(p.purchase_date).label("first_day"))
        .where(p.purchase_date <= day)
        .group_by(p.household_id)
        .subquery()
    )
    again = session.execute(
        select(p.household_id, func.sum(p.amount))
        .join(first, first.c.household_id == p.household_id)
        .where(
            p.purchase_date <= day,
            p.purchase_date >= literal(window_start, Date),
            p.purchase_date > first.c.first_day,
            _in(p.household_id, household_ids),
        )
        .group_by(p.household_id)
    ).all()
    place([r[0] for r in again], [float(r[1]) for r in again], portfolio.repeat_sales_window)

    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    start = dt.datetime.combine(window_start, dt.time(), tzinfo=dt.UTC)
    records = session.execute(
        select(ServiceRecord.household_id, ServiceRecord.kind, func.count())
        .where(
            ServiceRecord.opened_at < end,
            ServiceRecord.opened_at >= start,
            # Entries a plugin keeps (tickets) are costed by that plugin's own hook below.
            ServiceRecord.managed_by.is_(None),
            _in(ServiceRecord.household_id, household_ids),
        )
        .group_by(ServiceRecord.household_id, ServiceRecord.kind)
    ).all()
    place(
        [r[0] for r in records],
        [r[2] * settings.record_hours.get(r[1], 0.0) for r in records],
        portfolio.service_hours,
    )

    pm = session.info.get("pm")
    costs = pm.hook.household_service_costs(session=session, since=start, until=end) if pm else None
    if costs is None:
        portfolio.service_costs_known = False
        portfolio.notes.append(NO_SERVICE_COSTS)
        return portfolio
    keys = [c["household_id"] for c in costs]
    hours = [
        sum(c.get(f"tickets_{s}", 0.0) * h for s, h in settings.handling_hours.items())
        for c in costs
    ]
    place(keys, hours, portfolio.service_hours)
    place(
        keys,
        [
            c.get("repair_cost", 0.0) + c.get("compensation", 0.0) + c.get("gifts", 0.0)
            for c in costs
        ],
        portfolio.direct_cost,
    )
    place(keys, [c.get("repair_fees", 0.0) for c in costs], portfolio.repair_fees)
    place(keys, [c.get("campaign_cost", 0.0) for c in costs], portfolio.campaign_cost)
    place(keys, [c.get("loyalty_fund", 0.0) for c in costs], portfolio.fund_cost)
    return portfolio


# Values ----------------------------------------------------------------------------------


def referral_margin(settings: Settings) -> float:
    """What one yuan of referred sales is worth to the referrer: the sale's margin less what
    the referral cost (reward, discount), times the share credited to the referrer."""
    return max(settings.sales_margin - settings.referral_cost_rate, 0.0) * settings.referral_credit


@dataclass
class Scores:
    portfolio: Portfolio
    p_alive: np.ndarray
    expected_purchases: np.ndarray
    parts: dict[str, np.ndarray]
    clv: np.ndarray
    realized: np.ndarray  # realized relationship profit per year over the cost window


def value(
    portfolio: Portfolio,
    settings: Settings,
    bg: BgNbd | None,
    gg: GammaGamma | None,
    unit: str = "months",
) -> Scores:
    """Every household's lifetime value and its parts; pure numpy, no database. `bg` holds
    the parameters of the purchase-count model `settings.purchase_model`."""
    n = portfolio.household_id.size
    years = settings.horizon_years
    discount = (1.0 + settings.discount_rate) ** -np.arange(1, years + 1)
    annuity = float(discount.sum())
    buyer = portfolio.buyer
    x, t_x, T = portfolio.x, portfolio.t_x, portfolio.T

    p_alive = np.full(n, np.nan)
    expected = np.zeros(n)
    margin = np.zeros(n)
    if bg is not None and buyer.any():
        purchases = PURCHASE_MODELS[settings.purchase_model]
        per_year = YEAR_DAYS / history.UNITS[unit]
        with np.errstate(all="ignore"):  # non-finite results are reported below
            cumulative = np.stack(
                [
                    purchases.expected_purchases(bg, k * per_year, x[buyer], t_x[buyer], T[buyer])
                    for k in range(1, years + 1)
                ]
            )
        yearly = np.diff(cumulative, axis=0, prepend=0.0)
        if gg is not None:
            spend = gammagamma.expected_spend(gg, x[buyer], portfolio.mean_repeat_spend[buyer])
        else:
            spend = np.full(int(buyer.sum()), portfolio.mean_sale)
        margin[buyer] = (discount @ yearly) * spend * settings.sales_margin
        expected[buyer] = cumulative[-1]
        p_alive[buyer] = purchases.p_alive(bg, x[buyer], t_x[buyer], T[buyer])
        broken = ~(np.isfinite(margin) & np.isfinite(expected))
        if broken.any():
            # Degenerate parameters (e.g. a and b running off to infinity when nobody drops
            # out) can overflow the hypergeometric series; say so rather than store NaN.
            margin[broken], expected[broken], p_alive[broken] = 0.0, 0.0, np.nan
            portfolio.notes.append(
                f"购买模型对 {int(broken.sum())} 户算不出有效的预期购买次数（参数退化："
                f"a={bg.a:.3g}，b={bg.b:.3g}），其再购毛利按零计；"
                "请换校准日期或时间单位重新拟合（crm profitability fit）。"
            )
    prospects = ~buyer
    margin[prospects] = (
        settings.prospect_conversion * portfolio.mean_sale * settings.sales_margin * discount[0]
    )
    expected[prospects] = settings.prospect_conversion

    exposure = portfolio.exposure_years
    property_year = (
        settings.property_fee_per_m2_month * portfolio.area * 12 * settings.property_margin
    )
    after_sales_year = (
        portfolio.service_hours * settings.hourly_cost + portfolio.direct_cost
    ) / exposure
    other_year = (
        portfolio.member * settings.club_cost_per_year
        + (portfolio.campaign_cost + portfolio.fund) / exposure
    )
    parts = {
        "purchase_margin": margin,
        "property_revenue": property_year * annuity,
        "service_revenue": portfolio.repair_fees / exposure * annuity,
        "referral_value": portfolio.referred_sales * referral_margin(settings),
        "after_sales_cost": after_sales_year * annuity,
        "other_cost": other_year * annuity,
    }
    clv = (
        parts["purchase_margin"]
        + parts["property_revenue"]
        + parts["service_revenue"]
        + parts["referral_value"]
        - parts["after_sales_cost"]
        - parts["other_cost"]
    )
    return Scores(portfolio, p_alive, expected, parts, clv, realized(portfolio, settings))


def realized(portfolio: Portfolio, settings: Settings) -> np.ndarray:
    """Each household's realized relationship profit per year over the cost window: what it
    brought after its first purchase (margin of its repeat purchases and of the sales it
    referred, property margin once handed over, paid-service fees) less what serving it cost
    (staff hours, repairs, compensation, gifts, activities, loyalty fund, club)."""
    brought = (
        portfolio.repeat_sales_window * settings.sales_margin
        + portfolio.referred_sales_window * referral_margin(settings)
        + portfolio.repair_fees
    )
    cost = (
        portfolio.service_hours * settings.hourly_cost
        + portfolio.direct_cost
        + portfolio.campaign_cost
        + portfolio.fund
    )
    property_year = (
        settings.property_fee_per_m2_month
        * portfolio.area
        * 12
        * settings.property_margin
        * portfolio.owner
    )
    return (
        (brought - cost) / portfolio.exposure_years
        + property_year
        - portfolio.member * settings.club_cost_per_year
    )


def _model(fit: ModelFit | None, cls):
    return None if fit is None else cls(**fit.parameters)


def models(
    session: Session, as_of: dt.date, settings: Settings, notes: list[str], fit: bool = True
) -> tuple[ModelFit | None, ModelFit | None]:
    """The latest fits of the purchase-count model the settings choose and of Gamma-Gamma;
    fitted now (and stored) when none exists yet and `fit` allows."""
    bg_fit, gg_fit = latest_fit(session, settings.purchase_model), None
    if bg_fit is None and not fit:
        notes.append("尚无购买模型：再次购买的毛利按零计（可用 crm profitability fit 拟合）。")
        return None, None
    if bg_fit is None:
        try:
            bg_fit, gg_fit = fit_models(
                session, as_of, settings.unit, purchase_model=settings.purchase_model
            )
        except CrmError as exc:
            notes.append(f"未能拟合购买模型（{exc}）：再次购买的毛利按零计。")
            return None, None
        notes.append(
            f"尚无 {MODEL_NAMES[settings.purchase_model]} 购买模型，已按截止 {as_of}、"
            f"时间单位 {settings.unit} 拟合并保存"
            "（可用 crm profitability fit 重新拟合）。"
        )
    else:
        # The Gamma-Gamma fit made with it (the latest may belong to the other purchase model,
        # or the latest fit may have found no repeat spend to fit).
        gg_fit = session.scalar(
            select(ModelFit)
            .where(
                ModelFit.model == "gammagamma",
                ModelFit.fitted_at == bg_fit.fitted_at,
                ModelFit.calibration_end == bg_fit.calibration_end,
                ModelFit.unit == bg_fit.unit,
            )
            .order_by(ModelFit.id.desc())
            .limit(1)
        )
    if gg_fit is None and bg_fit is not None:
        notes.append("没有可用的 Gamma-Gamma 消费模型：每次购买金额按全部成交的平均值计。")
    return bg_fit, gg_fit


def compute(
    session: Session,
    now: dt.datetime | None = None,
    household_ids: list[int] | None = None,
    settings: Settings | None = None,
) -> tuple[Scores, ModelFit | None, ModelFit | None]:
    """Lifetime values as of `now` (all households, or those of `household_ids`)."""
    now = now or utcnow()
    as_of = local_today(now)
    settings = settings or load(session)
    notes: list[str] = []
    # A few households computed on the spot must not set off a fit of the whole portfolio.
    bg_fit, gg_fit = models(session, as_of, settings, notes, fit=household_ids is None)
    unit = bg_fit.unit if bg_fit is not None else settings.unit
    portfolio = gather(session, as_of, settings, unit, household_ids)
    portfolio.notes[:0] = notes
    scores = value(portfolio, settings, _model(bg_fit, BgNbd), _model(gg_fit, GammaGamma), unit)
    return scores, bg_fit, gg_fit


def _scoring_lock(session: Session) -> None:
    """Wait for any other scoring to commit (PostgreSQL; on SQLite the write lock makes
    writers take turns)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(SCORING_LOCK)))


def score_if_never_scored(session: Session, now: dt.datetime | None = None) -> None:
    """Score every household once, unless a scoring is already stored: the check is made
    under the scoring lock, so of several processes asking at once one scores and the
    others use its values."""
    _scoring_lock(session)
    if latest_run(session) is None:
        score(session, now=now)


def score(session: Session, now: dt.datetime | None = None) -> tuple[ScoringRun, list[str]]:
    """Score every household and store the values as the latest run (replacing the last
    run's values); returns the run and notes for the user."""
    user = audit.current_user(session)
    user.require("profitability.run", "评估客户终身价值")
    _scoring_lock(session)
    now = now or utcnow()
    settings = load(session)
    scores, bg_fit, gg_fit = compute(session, now, settings=settings)
    portfolio = scores.portfolio
    run = ScoringRun(
        run_at=now,
        as_of=local_today(now),
        bgnbd_fit_id=bg_fit.id if bg_fit else None,
        gammagamma_fit_id=gg_fit.id if gg_fit else None,
        settings=snapshot(settings),
        households=int(portfolio.household_id.size),
        total_clv=float(scores.clv.sum()),
        service_costs_known=portfolio.service_costs_known,
        run_by=user.label,
    )
    session.add(run)
    session.flush()
    session.execute(delete(HouseholdValue))
    columns = {name: scores.parts[name].tolist() for name in PARTS}
    p_alive = [None if np.isnan(v) else v for v in scores.p_alive.tolist()]
    expected, clv = scores.expected_purchases.tolist(), scores.clv.tolist()
    realized_profit = scores.realized.tolist()
    rows = [
        {
            "run_id": run.id,
            "household_id": household_id,
            "project_id": portfolio.project_id[i],
            "segment": portfolio.segment[i],
            "stage": portfolio.stage[i],
            "p_alive": p_alive[i],
            "expected_purchases": expected[i],
            "clv": clv[i],
            "realized_profit": realized_profit[i],
            **{name: columns[name][i] for name in PARTS},
        }
        for i, household_id in enumerate(portfolio.household_id.tolist())
    ]
    for start in range(0, len(rows), 10_000):
        session.execute(insert(HouseholdValue), rows[start : start + 10_000])
    audit.record(
        session,
        "create",
        "prof_runs",
        run.id,
        detail=f"评估 {run.households} 户客户终身价值，合计 {run.total_clv:,.0f} 元",
    )
    session.flush()
    return run, portfolio.notes


# Reading the stored values -----------------------------------------------------------------


def latest_run(session: Session) -> ScoringRun | None:
    return session.scalar(select(ScoringRun).order_by(ScoringRun.id.desc()).limit(1))


def require_run(session: Session) -> ScoringRun:
    run = latest_run(session)
    if run is None:
        raise CrmError("还没有终身价值评估结果：请先运行 crm profitability clv。")
    return run


def _value_row(value_row: HouseholdValue, code: str, name: str, project: str | None) -> dict:
    return {
        "household": code,
        "name": name,
        "project": project,
        "segment": MEMBER_TIERS.get(value_row.segment, value_row.segment),
        "stage": STAGES.get(value_row.stage, value_row.stage),
        "p_alive": None if value_row.p_alive is None else round(value_row.p_alive, 4),
        "expected_purchases": round(value_row.expected_purchases, 4),
        **{part: round(getattr(value_row, part), 2) for part in PARTS},
        "clv": round(value_row.clv, 2),
        "realized_profit": None
        if value_row.realized_profit is None
        else round(value_row.realized_profit, 2),
    }


def _values_query():
    return (
        select(HouseholdValue, Household.code, Household.name, Project.name)
        .join(Household, Household.id == HouseholdValue.household_id)
        .outerjoin(Project, Project.id == HouseholdValue.project_id)
    )


def ranking(
    session: Session, limit: int | None = None, offset: int = 0, lowest: bool = False
) -> Page:
    """The households of the latest run ranked by lifetime value (rank 1: the highest): one
    page of the ranking, from the top or, with `lowest`, from the bottom, with how many
    households the run holds. Every household was scored; paging only picks the rows."""
    require_run(session)
    v = HouseholdValue
    # From the bottom is the exact reverse of from the top, ties included, so ranks agree.
    order = (v.clv, v.household_id.desc()) if lowest else (v.clv.desc(), v.household_id)
    page = fetch(session, _values_query().order_by(*order), limit, offset)
    rows = []
    for position, found in enumerate(page, start=offset + 1):
        rank = page.total + 1 - position if lowest else position
        rows.append({"rank": rank, **_value_row(*found)})
    return Page(rows, page.total, page.offset, page.limit)


def household_value(session: Session, code: str) -> dict:
    require_run(session)
    rows = [
        _value_row(*found)
        for found in session.execute(_values_query().where(Household.code == code.strip()))
    ]
    if not rows:
        exists = session.scalar(select(Household.id).where(Household.code == code.strip()))
        if exists is None:
            raise NotFound(f"找不到客户编号“{code}”：请用 crm household search 查找。")
        raise CrmError(f"客户“{code}”不在最近一次评估中：请重新运行 crm profitability clv。")
    return rows[0]
