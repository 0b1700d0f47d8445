"""Customer groups judged as a whole (DOMAIN.md section 4): lifetime value per project,
segment and lifecycle stage, the whale curve (cumulative profit against households ranked by
profit) and how much of the after-sales cost the unprofitable households consume.

Everything reads the latest scoring run (`crm profitability clv`). The PNG is drawn with
matplotlib's Agg canvas, imported inside the function.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from crm.core.charts import charts
from crm.core.errors import CrmError
from crm.core.models import Project
from crm.core.render import percent
from crm.core.vocab import MEMBER_TIERS
from crm.plugins.profitability.clv import PARTS, STAGES, require_run
from crm.plugins.profitability.models import HouseholdValue

GROUPINGS = {"project": "项目", "segment": "客户细分（会员等级）", "stage": "生命周期阶段"}
# DOMAIN.md's reference figures [000].
REFERENCE_UNPROFITABLE = "50%-60%"
REFERENCE_HEAVY_USERS = "占用 60%-80% 售后资源的客户只带来约 20% 的利润"
# The heavy users are those who together consume this share of after-sales cost (the middle
# of the 60-80 % the reference names).
HEAVY_SHARE = 0.7


def group_report(session: Session, by: str = "project") -> list[dict]:
    """Households, lifetime value and its parts per group of the latest run."""
    if by not in GROUPINGS:
        raise CrmError(f"不认识的分组方式“{by}”；可用：{'、'.join(GROUPINGS)}。")
    require_run(session)
    v = HouseholdValue
    key = {"project": Project.name, "segment": v.segment, "stage": v.stage}[by]
    query = (
        select(
            key.label("key"),
            func.count().label("households"),
            func.sum(v.clv),
            *(func.sum(getattr(v, part)) for part in PARTS),
            func.sum(case((v.clv < 0, 1), else_=0)),
            func.sum(v.realized_profit),
            func.sum(case((v.realized_profit < 0, 1), else_=0)),
            func.count(v.realized_profit),
        )
        .select_from(v)
        .group_by(key)
    )
    if by == "project":
        query = query.outerjoin(Project, Project.id == v.project_id)
    labels = {"segment": MEMBER_TIERS, "stage": STAGES}.get(by, {})
    order = list(labels)
    rows = []
    for row in session.execute(query):
        households, total = int(row[1]), float(row[2] or 0.0)
        parts = {part: round(float(row[3 + i] or 0.0), 2) for i, part in enumerate(PARTS)}
        rows.append(
            {
                "key": row[0],
                "label": labels.get(row[0], row[0]) if row[0] is not None else "（无项目）",
                "households": households,
                "clv_total": round(total, 2),
                "clv_mean": round(total / households, 2) if households else None,
                **parts,
                "unprofitable_share": round(int(row[-4]) / households, 4) if households else None,
                "realized_mean": round(float(row[-3]) / int(row[-1]), 2) if row[-1] else None,
                "realized_unprofitable_share": round(int(row[-2]) / int(row[-1]), 4)
                if row[-1]
                else None,
            }
        )
    if order:
        rows.sort(key=lambda r: order.index(r["key"]) if r["key"] in order else len(order))
    else:
        rows.sort(key=lambda r: -r["clv_total"])
    return rows


def _values(session: Session) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lifetime value, after-sales cost and realized profit per year (NaN where a run made
    before prof0003 has none) of every household of the latest run."""
    require_run(session)
    v = HouseholdValue
    rows = session.execute(select(v.clv, v.after_sales_cost, v.realized_profit)).all()
    if not rows:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    clv, cost, realized = np.array(
        [(a, b, np.nan if c is None else c) for a, b, c in rows], dtype=float
    ).T
    return clv, cost, realized


def whale_curve(clv: np.ndarray, points: int = 10) -> list[dict]:
    """Cumulative profit of the most profitable households first, at each tenth of them:
    rises above 100 % of the total while the profitable ones are added, then falls back as
    the unprofitable ones take it down (the whale's hump)."""
    if clv.size == 0:
        return []
    ranked = np.sort(clv)[::-1]
    cumulative = np.cumsum(ranked)
    total = float(cumulative[-1])
    rows = []
    for k in range(1, points + 1):
        count = max(1, round(clv.size * k / points))
        reached = float(cumulative[count - 1])
        rows.append(
            {
                "decile": k,
                "household_share": round(count / clv.size, 4),
                "households": count,
                "cumulative_profit": round(reached, 2),
                "profit_share": round(reached / total, 4) if total > 0 else None,
                "lowest_profit": round(float(ranked[count - 1]), 2),
            }
        )
    return rows


def realized_known(realized: np.ndarray | None) -> bool:
    """Whether every household of the run has a realized profit (runs scored before
    prof0003 have none), so the reference figures are read from it rather than from CLV."""
    return realized is not None and realized.size > 0 and bool(np.isfinite(realized).all())


def concentration(clv: np.ndarray, cost: np.ndarray, realized: np.ndarray | None = None) -> dict:
    """The unprofitable share (by lifetime value, and by realized relationship profit) and
    the after-sales cost it consumes; the heaviest users of after-sales service (those using
    HEAVY_SHARE of it) and their share of profit (realized profit where the run has it, as
    the reference figure measures what customers brought, else lifetime value)."""
    n = clv.size
    if n == 0:
        return {"households": 0}
    known = realized_known(realized)
    realized_figures = {"realized_unprofitable_share": None, "realized_total": None}
    if known:
        realized_figures = {
            "realized_unprofitable_households": int((realized < 0).sum()),
            "realized_unprofitable_share": round(float((realized < 0).mean()), 4),
            "realized_unprofitable_cost_share": round(
                float(cost[realized < 0].sum()) / float(cost.sum()), 4
            )
            if cost.sum() > 0
            else None,
            "realized_total": round(float(realized.sum()), 2),
        }
        profit = realized
    else:
        profit = clv
    losing = clv < 0
    total_cost, total_profit = float(cost.sum()), float(clv.sum())
    by_cost = np.argsort(-cost, kind="stable")
    cumulative = np.cumsum(cost[by_cost])
    heavy = by_cost[: int(np.searchsorted(cumulative, HEAVY_SHARE * total_cost) + 1)]
    return {
        "households": n,
        "unprofitable_households": int(losing.sum()),
        "unprofitable_share": round(float(losing.mean()), 4),
        "unprofitable_cost_share": round(float(cost[losing].sum()) / total_cost, 4)
        if total_cost > 0
        else None,
        "heavy_users": int(heavy.size) if total_cost > 0 else 0,
        "heavy_user_share": round(heavy.size / n, 4) if total_cost > 0 else None,
        "heavy_cost_share": round(float(cost[heavy].sum()) / total_cost, 4)
        if total_cost > 0
        else None,
        "heavy_profit_share": round(float(profit[heavy].sum()) / float(profit.sum()), 4)
        if total_cost > 0 and profit.sum() > 0
        else None,
        "profit_basis": "realized" if known else "clv",
        "total_clv": round(total_profit, 2),
        "peak_profit_share": round(
            float(np.cumsum(np.sort(profit)[::-1]).max()) / float(profit.sum()), 4
        )
        if profit.sum() > 0
        else None,
        **realized_figures,
    }


def summary_lines(figures: dict) -> list[dict]:
    """The headline figures beside DOMAIN.md's reference figures."""
    if not figures.get("households"):
        return []
    realized = figures.get("realized_unprofitable_share") is not None
    basis = "已实现维系利润" if figures.get("profit_basis") == "realized" else "终身价值"
    lines = [
        {
            "figure": "不盈利客户占比（已实现维系利润 < 0）",
            "value": percent(figures.get("realized_unprofitable_share"), missing="—"),
            "reference": REFERENCE_UNPROFITABLE,
        },
        {
            "figure": "这些客户占用的售后成本",
            "value": percent(figures.get("realized_unprofitable_cost_share"), missing="—"),
            "reference": "—",
        },
        {
            "figure": "不盈利客户占比（终身价值 < 0，含预期再购）",
            "value": percent(figures["unprofitable_share"], missing="—"),
            "reference": "—" if realized else REFERENCE_UNPROFITABLE,
        },
        {
            "figure": "终身价值不盈利客户占用的售后成本",
            "value": percent(figures["unprofitable_cost_share"], missing="—"),
            "reference": "—",
        },
        {
            "figure": f"占用 {HEAVY_SHARE:.0%} 售后成本的客户（占客户数）",
            "value": percent(figures["heavy_user_share"], missing="—"),
            "reference": "—",
        },
        {
            "figure": f"这些客户带来的利润占比（{basis}）",
            "value": percent(figures["heavy_profit_share"], missing="—"),
            "reference": REFERENCE_HEAVY_USERS,
        },
        {
            "figure": f"累计利润峰值（占总利润，{basis}）",
            "value": percent(figures["peak_profit_share"], missing="—"),
            "reference": "—",
        },
    ]
    return lines if realized else lines[2:]


def portfolio_figures(session: Session) -> tuple[list[dict], dict]:
    """The whale curve's deciles and the concentration figures of the latest run."""
    clv, cost, realized = _values(session)
    figures = concentration(clv, cost, realized)
    profit = realized if figures.get("profit_basis") == "realized" else clv
    return whale_curve(profit), figures


def write_whale_chart(session: Session, directory: Path) -> tuple[Path, str | None]:
    """whale.png: cumulative profit (% of total) against households ranked by profit."""
    clv, _cost, realized = _values(session)
    known = realized_known(realized)
    profit = realized if known else clv
    with charts(directory) as drawing:
        figure = drawing.figure(9, 5.5)
        axes = figure.subplots()
        total = float(profit.sum())
        if profit.size and total > 0:
            ranked = np.cumsum(np.sort(profit)[::-1]) / total * 100
            share = np.arange(1, profit.size + 1) / profit.size * 100
            axes.plot(np.r_[0, share], np.r_[0, ranked], color="tab:blue", label="累计利润")
            axes.axhline(100, color="grey", linestyle="--", linewidth=1, label="总利润")
            axes.set_xlim(0, 100)
            axes.set_xlabel("按利润从高到低排列的客户（%）")
            axes.set_ylabel("累计利润占总利润（%）")
            axes.legend(loc="lower right")
        else:
            figure.text(0.5, 0.5, "总利润不为正，无法绘制鲸鱼曲线", ha="center", va="center")
        axes.set_title("客户利润鲸鱼曲线（" + ("已实现维系利润" if known else "终身价值") + "）")
        path = drawing.save(figure, "whale.png")
    return path, drawing.note


# How the unprofitable share depends on the settings -----------------------------------------

PART_LABELS = {
    "purchase_margin": "再购毛利",
    "property_revenue": "物业收益",
    "service_revenue": "有偿服务收入",
    "referral_value": "推荐价值",
    "after_sales_cost": "售后成本",
    "other_cost": "其他维系成本",
}
# (setting, alternative values) tried one at a time against the current settings.
SENSITIVITY = (
    ("sales_margin", (0.05, 0.10, 0.20)),
    ("referral_credit", (0.0, 0.5)),
    ("hourly_cost", (60.0, 240.0, 480.0)),
    ("property_margin", (0.0, 0.05, 0.20)),
    ("horizon_years", (1, 3, 10)),
    ("discount_rate", (0.0, 0.15)),
    ("club_cost_per_year", (0.0, 600.0)),
)


def sensitivity(session, now=None) -> tuple[list[dict], list[str]]:
    """The unprofitable share under the current settings and with one setting changed at a
    time (the portfolio is read once and valued again for each row; nothing is stored), with
    what the average profitable and unprofitable household is made of."""
    from dataclasses import replace

    from crm.core.clock import local_today
    from crm.core.models import utcnow
    from crm.plugins.profitability import clv as clv_module
    from crm.plugins.profitability import history
    from crm.plugins.profitability.bgnbd import BgNbd
    from crm.plugins.profitability.gammagamma import GammaGamma
    from crm.plugins.profitability.settings import load

    now = now or utcnow()
    settings = load(session)
    notes: list[str] = []
    bg_fit, gg_fit = clv_module.models(session, local_today(now), settings, notes, fit=False)
    unit = bg_fit.unit if bg_fit is not None else settings.unit
    portfolio = clv_module.gather(session, local_today(now), settings, unit)
    bg = None if bg_fit is None else BgNbd(**bg_fit.parameters)
    gg = None if gg_fit is None else GammaGamma(**gg_fit.parameters)

    def row(label: str, key: str, value, changed, purchases=None, households=None) -> dict:
        scores = clv_module.value(households or portfolio, changed, purchases or bg, gg, unit)
        losing, short = scores.clv < 0, scores.realized < 0
        some = bool(losing.size)
        return {
            "setting": key,
            "label": label,
            "value": value,
            "realized_unprofitable_share": round(float(short.mean()), 4) if some else None,
            "realized_median": round(float(np.median(scores.realized)), 2) if some else None,
            "unprofitable_share": round(float(losing.mean()), 4) if some else None,
            "unprofitable": int(losing.sum()),
            "clv_median": round(float(np.median(scores.clv)), 2) if some else None,
        }

    rows = [row("当前设置", "—", "—", settings)]
    for key, values in SENSITIVITY:
        for alternative in values:
            if alternative == getattr(settings, key):
                continue
            rows.append(
                row(
                    f"{key} = {alternative:g}",
                    key,
                    alternative,
                    replace(settings, **{key: alternative}),
                )
            )
    other = next(code for code in clv_module.PURCHASE_MODELS if code != settings.purchase_model)
    if bg is not None:
        # The other purchase model, fitted on the same histories in memory (nothing stored).
        summary = history.purchase_summary(session, bg_fit.calibration_end, unit, bg_fit.since)
        if summary.x.size:
            other_bg = clv_module.PURCHASE_MODELS[other].fit(summary.x, summary.t_x, summary.T)
            switched = replace(settings, purchase_model=other)
            rows.append(
                row(f"purchase_model = {other}", "purchase_model", other, switched, other_bg)
            )
    scale = {s: h * 3 for s, h in settings.handling_hours.items()}
    busier = replace(settings, handling_hours=scale)
    # The hours are turned into each household's service hours when the portfolio is read.
    rebuilt = clv_module.gather(session, local_today(now), busier, unit)
    rows.append(row("工单工时 ×3", "handling_hours", "×3", busier, households=rebuilt))
    # The cost window decides which history is read: read the portfolio again for each.
    for years in (1.0, 4.0):
        if years != settings.cost_window_years:
            window = replace(settings, cost_window_years=years)
            rows.append(
                row(
                    f"cost_window_years = {years:g}",
                    "cost_window_years",
                    years,
                    window,
                    households=clv_module.gather(session, local_today(now), window, unit),
                )
            )
    base = clv_module.value(portfolio, settings, bg, gg, unit)
    losing = base.clv < 0
    brought_sales = (portfolio.repeat_sales_window > 0) | (portfolio.referred_sales_window > 0)
    lines = list(portfolio.notes) + notes
    for name, mask in (("终身价值不盈利", losing), ("终身价值盈利", ~losing)):
        if mask.any():
            parts = "，".join(
                f"{PART_LABELS[part]} {float(values[mask].mean()):,.0f}"
                for part, values in base.parts.items()
            )
            lines.append(f"{name}客户 {int(mask.sum())} 户，户均：{parts}（元，现值）。")
    short = base.realized < 0
    for name, mask in (("已实现不盈利", short), ("已实现盈利", ~short)):
        if mask.any():
            lines.append(
                f"{name}客户 {int(mask.sum())} 户，户均已实现维系利润 "
                f"{float(base.realized[mask].mean()):,.0f} 元/年；其中近期再购或推荐成交的 "
                f"{int((mask & brought_sales).sum())} 户。"
            )
    return rows, lines
