"""The `crm profitability` commands: fit, clv, groups, assess and settings.

Each command parses, calls the library, renders; heavy imports stay inside the functions.
"""

from __future__ import annotations

import click

from crm.core.chain import TASK_KINDS
from crm.core.cliutil import (
    argument,
    emit,
    emit_record,
    format_option,
    get_app,
    household_option,
    paging,
    parse_day,
)
from crm.core.vocab import TEAM_KINDS
from crm.plugins.profitability.vocab import UNITS

MONEY_COLUMNS = [
    ("purchase_margin", "再购毛利"),
    ("property_revenue", "物业收益"),
    ("service_revenue", "有偿服务收入"),
    ("referral_value", "推荐价值"),
    ("after_sales_cost", "售后成本"),
    ("other_cost", "其他维系成本"),
]
VALUE_COLUMNS = [
    ("household", "客户编号"),
    ("name", "客户"),
    ("project", "项目"),
    ("segment", "会员等级"),
    ("stage", "生命周期阶段"),
    ("p_alive", "活跃概率"),
    ("expected_purchases", "预期再购次数"),
    *MONEY_COLUMNS,
    ("clv", "终身价值(元)"),
    ("realized_profit", "已实现维系利润(元/年)"),
]
FIT_COLUMNS = [
    ("id", "编号"),
    ("model", "模型"),
    ("parameters", "参数"),
    ("log_likelihood", "对数似然"),
    ("customers", "客户数"),
    ("calibration_end", "校准截止"),
    ("unit", "时间单位", UNITS),
    ("since", "起始"),
    ("fitted_at", "拟合时间"),
    ("status", "拟合状态"),
]
WHALE_COLUMNS = [
    ("decile", "十分位"),
    ("household_share", "客户占比"),
    ("households", "客户数"),
    ("cumulative_profit", "累计利润(元)"),
    ("profit_share", "占总利润"),
    ("lowest_profit", "该段最低利润(元)"),
]
SENSITIVITY_COLUMNS = [
    ("label", "设置"),
    ("realized_unprofitable_share", "已实现不盈利占比"),
    ("realized_median", "已实现维系利润中位数(元/年)"),
    ("unprofitable", "终身价值不盈利户数"),
    ("unprofitable_share", "终身价值不盈利占比"),
    ("clv_median", "终身价值中位数(元)"),
]
SUMMARY_COLUMNS = [("figure", "指标"), ("value", "本组合"), ("reference", "参考值（DOMAIN）")]
PLAN_COLUMNS = [
    ("best", "最优"),
    ("plan", "方案"),
    ("cost", "成本(元)"),
    ("retention_gain", "挽留概率提升"),
    ("referral_gain", "推荐概率提升"),
    ("expected_value", "期望价值(元)"),
    ("team", "承办班组", TEAM_KINDS),
    ("task", "任务", TASK_KINDS),
    ("reason", "测算"),
]
SETTING_COLUMNS = [
    ("key", "设置项"),
    ("value_label", "当前值"),
    ("default_label", "默认值"),
    ("changed", "已修改"),
    ("description", "说明"),
]
# Programs read the stored codes, with the labels beside them.
SETTING_JSON_COLUMNS = [
    ("key", "key"),
    ("value", "value"),
    ("value_label", "value_label"),
    ("default", "default"),
    ("default_label", "default_label"),
    ("changed", "changed"),
    ("description", "description"),
]


SHARES = {
    "p_alive",
    "unprofitable_share",
    "realized_unprofitable_share",
    "household_share",
    "profit_share",
    "retention_gain",
    "referral_gain",
}
MONEY = {
    *(key for key, _ in MONEY_COLUMNS),
    "clv",
    "clv_total",
    "clv_mean",
    "cumulative_profit",
    "lowest_profit",
    "realized_mean",
    "realized_profit",
    "cost",
    "expected_value",
    "clv_median",
    "realized_median",
}


def _shown(rows: list[dict], fmt: str) -> list[dict]:
    """Tables read shares as rates and money as estimated values, whole yuan (the formats of
    crm.core.figures); JSON and CSV keep numbers."""
    from crm.core.figures import RATE, VALUE

    if fmt != "table":
        return rows

    def cell(key, value):
        if value is None or isinstance(value, bool):
            return value
        if key in SHARES:
            return RATE(value)
        if key in MONEY:
            return VALUE(value)
        return value

    return [{key: cell(key, value) for key, value in row.items()} for row in rows]


def _notes(notes: list[str]) -> None:
    for note in notes:
        click.echo(f"提示：{note}", err=True)


@click.group()
def profitability() -> None:
    """盈利能力评估：购买模型、客户终身价值、客户群组与鲸鱼曲线、方案评估与设置。"""


@profitability.command("fit")
@click.option(
    "--calibration-end", metavar="日期", help="校准截止日期（含），如 2026-03-31；默认今天。"
)
@click.option(
    "--unit",
    type=click.Choice(["days", "weeks", "months"]),
    help="时间单位：days 天、weeks 周、months 月；默认取设置 profitability.unit（月）。",
)
@click.option(
    "--since", metavar="日期", help="只用首次成交在此日期及以后的客户（同期群），如 2020-01-01。"
)
@format_option
def fit(calibration_end, unit, since, fmt) -> None:
    """用截止日期前的成交记录拟合购买模型（按设置 purchase_model：MBG/NBD 或 BG/NBD）与 Gamma-Gamma 消费模型并保存。"""
    from crm.core.db import transaction
    from crm.plugins.profitability.clv import fit_models, fit_row

    end, start = parse_day(calibration_end, "校准截止日期"), parse_day(since, "起始日期")
    with get_app().session() as session, transaction(session):
        bg, gg = fit_models(session, end, unit, start)
        rows = [fit_row(bg)] + ([fit_row(gg)] if gg is not None else [])
    if gg is None:
        click.echo("提示：没有以正金额再次购买的客户，未拟合 Gamma-Gamma 模型。", err=True)
    if fmt != "json":
        for row in rows:
            row["parameters"] = "，".join(f"{k}={v:.4g}" for k, v in row["parameters"].items())
    emit(rows, fmt, FIT_COLUMNS)


@profitability.command("clv")
@household_option("--household", "household_code", help="只看某个客户家庭（客户编号）的明细。")
@click.option("--lowest", is_flag=True, help="从价值最低的客户列起（排名仍是从高到低的名次）。")
@click.option("--stored", is_flag=True, help="不重新评估，只显示最近一次评估的结果。")
@paging(100, "户")
@format_option
def clv(household_code, lowest, stored, limit, offset, fmt) -> None:
    """评估全部客户的终身价值并保存，按终身价值从高到低列出客户（排名 1 为最高）。

    每次都评估并保存全部客户：--limit/--offset 只决定列出哪几户，不影响评估的范围与合计。"""
    from crm.core.db import transaction
    from crm.plugins.profitability.clv import household_value, ranking, score

    with get_app().session() as session:
        if household_code:  # a code that names nobody is refused before everyone is scored
            from crm.core.households import get_household

            get_household(session, household_code)
        if not stored:
            with transaction(session):
                run, notes = score(session)
            _notes(notes)
            click.echo(
                f"已评估 {run.households} 户，终身价值合计 {run.total_clv:,.0f} 元"
                f"（{run.as_of}，预测 {run.settings['horizon_years']} 年，"
                f"年折现率 {run.settings['discount_rate']:.1%}）。",
                err=True,
            )
        if household_code:
            row = household_value(session, household_code)
            emit_record(_shown([row], fmt)[0], fmt, VALUE_COLUMNS)
            return
        rows = ranking(session, limit, offset, lowest)
    emit(rows.map(lambda row: _shown([row], fmt)[0]), fmt, [("rank", "排名"), *VALUE_COLUMNS])


@profitability.command("groups")
@click.option(
    "--by",
    "group_by",
    type=click.Choice(["project", "segment", "stage"]),
    default="project",
    show_default=True,
    help="分组方式：project 项目、segment 会员等级、stage 生命周期阶段。",
)
@click.option(
    "--chart",
    "chart_dir",
    type=click.Path(file_okay=False),
    help="把鲸鱼曲线图（whale.png）写入此目录。",
)
@click.option(
    "--explain",
    is_flag=True,
    help="再给出敏感性表：逐项改变设置时两种不盈利客户占比如何变化，及盈利与不盈利客户的构成。",
)
@format_option
def groups(group_by, chart_dir, explain, fmt) -> None:
    """按群组汇总终身价值，给出鲸鱼曲线与不盈利客户占比（对照 DOMAIN 参考值）；尚未评估时先评估。"""
    from crm.core.db import transaction
    from crm.core.render import to_json
    from crm.plugins.profitability.clv import score_if_never_scored
    from crm.plugins.profitability.groups import (
        GROUPINGS,
        group_report,
        portfolio_figures,
        sensitivity,
        summary_lines,
        write_whale_chart,
    )

    with get_app().session() as session:
        with transaction(session):
            score_if_never_scored(session)
        rows = group_report(session, group_by)
        explained = sensitivity(session) if explain else None
        curve, figures = portfolio_figures(session)
        chart = None
        if chart_dir:
            from pathlib import Path

            chart = write_whale_chart(session, Path(chart_dir))
    group_columns = [
        ("label", GROUPINGS[group_by]),
        ("households", "户数"),
        ("clv_total", "终身价值合计"),
        ("clv_mean", "户均终身价值"),
        *MONEY_COLUMNS,
        ("unprofitable_share", "终身价值不盈利占比"),
        ("realized_mean", "户均已实现维系利润(元/年)"),
        ("realized_unprofitable_share", "已实现不盈利占比"),
    ]
    if fmt == "json":
        result = {"groups": rows, "whale_curve": curve, "summary": figures}
        if explained:
            result["sensitivity"], result["explanation"] = explained
        click.echo(to_json(result))
    elif fmt == "csv":
        emit(
            explained[0] if explained else rows,
            fmt,
            SENSITIVITY_COLUMNS if explained else [("key", "key"), *group_columns],
        )
    else:
        emit(_shown(rows, fmt), fmt, group_columns)
        basis = "近年已实现维系利润" if figures.get("profit_basis") == "realized" else "终身价值"
        click.echo(f"\n鲸鱼曲线（按{basis}从高到低累计）：")
        emit(_shown(curve, fmt), fmt, WHALE_COLUMNS)
        click.echo()
        emit(summary_lines(figures), fmt, SUMMARY_COLUMNS)
        if explained:
            click.echo("\n敏感性（每次只改一项设置，其余按当前设置）：")
            emit(_shown(explained[0], fmt), fmt, SENSITIVITY_COLUMNS)
            for line in explained[1]:
                click.echo(line)
    if chart is not None:
        path, note = chart
        click.echo(f"已生成图表：{path}", err=True)
        if note:
            click.echo(f"提示：{note}", err=True)


@profitability.command("assess")
@argument("feedback_id", "反馈编号")
@format_option
def assess(feedback_id, fmt) -> None:
    """评估一条反馈记录的候选方案，给出期望价值最高的方案及理由。"""
    from crm.core.db import transaction
    from crm.core.render import to_json
    from crm.plugins.profitability.plans import assess_one, assessment_rows

    # A transaction: the first assessment on a fresh database scores and stores the values.
    with get_app().session() as session, transaction(session):
        result = assess_one(session, feedback_id)
    rows = assessment_rows(result)
    if fmt == "json":
        click.echo(
            to_json({"feedback": result.feedback_id, "best": result.best.name, "options": rows})
        )
        return
    emit(_shown(rows, fmt), fmt, PLAN_COLUMNS)
    if fmt == "table":
        click.echo(result.best.reason)


@profitability.group("settings")
def settings_group() -> None:
    """盈利能力评估的费率、成本与方案目录（经理可修改）。"""


@settings_group.command("list")
@paging(None)
@format_option
def settings_list(limit, offset, fmt) -> None:
    """列出全部设置项、当前值与默认值。"""
    from crm.core.paging import window
    from crm.plugins.profitability.settings import list_settings

    with get_app().session() as session:
        rows = list_settings(session)
    emit(
        window(rows, limit, offset), fmt, SETTING_JSON_COLUMNS if fmt == "json" else SETTING_COLUMNS
    )


@settings_group.command("set")
@argument("key", "设置项")
@argument("value", "新值")
@format_option
def settings_set(key, value, fmt) -> None:
    """修改一个设置项，如 profitability.discount_rate 0.06（需经理权限）。"""
    from crm.core.db import transaction
    from crm.plugins.profitability.settings import set_setting

    with get_app().session() as session, transaction(session):
        row = set_setting(session, key, value)
    emit([row], fmt, SETTING_JSON_COLUMNS if fmt == "json" else SETTING_COLUMNS)


def register(cli: click.Group) -> None:
    cli.add_command(profitability)
